"""The features stage's per-cutoff invariant checks: on the pandas conversion of a cutoff's rows (as before session
10) against on the Arrow rows the engine returns, on one cutoff of a prepared shop, timed in the same process.

    .venv/bin/python benchmarks/feature_checks.py --prepared /tmp/s9-1m --old /work/wt-base-s10 \
        --repeats 5 --out benchmarks/results/feature_checks_1m_s10.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features.build import features_at, shared_tables  # noqa: E402
from features.checks import check_feature_invariants  # noqa: E402
from features.cutoffs import FeatureParams, cutoff_schedule  # noqa: E402
from features.inputs import read_validated  # noqa: E402
from pipelines.engine import connect  # noqa: E402
from pipelines.params import block, load_params  # noqa: E402
from pipelines.validation.outcome import validated_as_of  # noqa: E402


def module_at(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_checks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def last_cutoff_rows(prepared: Path) -> pa.Table:
    params = load_params(prepared / "params.yaml")
    values = dict(block(params, "features"))
    values.pop("strategy", None)
    feature_params = FeatureParams.from_dict(values)
    as_of = validated_as_of(prepared / "validation.json")
    inputs = read_validated(connect("duckdb", None), str(prepared / "validated"), as_of)
    cutoff = cutoff_schedule(pd.Timestamp(feature_params.first_cutoff), feature_params.every_days, as_of)[-1]
    return features_at(inputs, cutoff, feature_params, shared_tables(inputs, feature_params, cache=True)).to_pyarrow()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(check: Callable[[], None]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    check()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--old", type=Path, required=True, help="a checkout with the pandas checks")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    old_check = module_at(args.old / "features/checks.py").check_feature_invariants
    rows = last_cutoff_rows(args.prepared)
    runs: dict[str, list[dict[str, float]]] = {"old_pandas": [], "new_arrow": []}
    for _ in range(args.repeats):  # interleaved
        runs["old_pandas"].append(timed(lambda: old_check(rows.to_pandas())))
        runs["new_arrow"].append(timed(lambda: check_feature_invariants(rows)))
    medians = {
        name: {key: statistics.median(run[key] for run in values) for key in ("wall_s", "cpu_s")}
        for name, values in runs.items()
    }
    record = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "rows": rows.num_rows,
        "columns": rows.num_columns,
        "runs": runs,
        "medians": medians,
        "old_over_new_cpu": medians["old_pandas"]["cpu_s"] / medians["new_arrow"]["cpu_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(medians, indent=2), f"old/new CPU {record['old_over_new_cpu']:.1f}")


if __name__ == "__main__":
    main()
