"""Two feature tables compared: `benchmarks/features.py`'s `full_comparison` (rows matched on customer and cutoff,
per column the values that differ at all and beyond 1e-12 relative), and for the columns named by `--bitwise`
whether every value has the same bits (doubles compared as their 64-bit patterns, so -0.0 differs from 0.0).

Pairs of `benchmarks/stages.py --keep` folders, e.g. the new code's first run against the old code's, and the old
code's two runs against each other (how much two runs of one code differ):

    .venv/bin/python benchmarks/features_identity.py --bitwise btyd_p_alive btyd_expected_purchases \\
        btyd_p_no_purchase --pair /tmp/h10b/keep250/new-features-1 /tmp/h10b/keep250/baseline-features-1 \\
        --out benchmarks/results/features_identity_250k_btyd_s10.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def full_comparison(new: Path, old: Path) -> dict[str, Any]:
    """benchmarks/features.py's `full_comparison`."""
    spec = importlib.util.spec_from_file_location("features_benchmark", HERE / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.full_comparison(new, old)
    return result


def bitwise(new: Path, old: Path, columns: list[str]) -> dict[str, Any]:
    """Per column, the number of values whose bits differ, rows in (customer_id, cutoff) order."""
    keys = [("customer_id", "ascending"), ("cutoff", "ascending")]
    tables = [pq.read_table(path, columns=["customer_id", "cutoff", *columns]).sort_by(keys) for path in (new, old)]
    if tables[0].num_rows != tables[1].num_rows or not all(
        tables[0].column(key).equals(tables[1].column(key)) for key in ("customer_id", "cutoff")
    ):
        return {"same_keys": False}
    differing: dict[str, int | str] = {}
    for name in columns:
        left, right = (table.column(name).to_numpy() for table in tables)
        if left.dtype != np.float64 or right.dtype != np.float64:
            differing[name] = f"not float64 without nulls: {left.dtype}, {right.dtype}"
            continue
        differing[name] = int((left.view(np.uint64) != right.view(np.uint64)).sum())
    return {"same_keys": True, "rows": tables[0].num_rows, "values_with_other_bits": differing}


def features_file(folder: Path) -> Path:
    found = sorted(folder.rglob("features.parquet"))
    if len(found) != 1:
        raise SystemExit(f"expected one features.parquet under {folder}, found {len(found)}; pass a --keep run folder")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, type=Path, action="append", required=True, metavar=("NEW", "OLD"))
    parser.add_argument("--bitwise", nargs="+", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = []
    for new_folder, old_folder in args.pair:
        new, old = features_file(new_folder), features_file(old_folder)
        pairs.append({
            "new": str(new), "old": str(old), "full_comparison": full_comparison(new, old),
            "bitwise": bitwise(new, old, args.bitwise),
        })  # fmt: skip
        print(json.dumps(pairs[-1]["bitwise"]), flush=True)
    result = {
        "benchmark": "features_identity",
        "command": shlex.join(["python", "benchmarks/features_identity.py", *sys.argv[1:]]),
        "pairs": pairs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
