"""One cutoff's feature query under DuckDB's profiler (EXPLAIN ANALYZE's JSON form), and the CPU seconds of the
steps the `features` stage takes per cutoff, for one checkout on a validated shop.

The shared tables are computed and cached first, as the stage does; then, at the cutoff: building the expression
(`features_at`, which runs the BG/NBD fit), compiling it to SQL, the query itself under the profiler, and the
invariant checks on its rows. Run it for the old and the new checkout, each as its own process:

    .venv/bin/python benchmarks/features_explain.py --code /work/wt-features-base --data /tmp/wtf/k250 \
        --cutoff 2025-09-18 --out benchmarks/results/features_explain_250k_base_s8.json

Single runs on a shared machine: they locate the cost per operator; stages.py measures the stage.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(what: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    """CPU and wall seconds of `what()`, and its result."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = what()
    return {"cpu": round(cpu_seconds() - cpu, 2), "wall": round(time.perf_counter() - wall, 2)}, result


def profiler() -> Any:
    """benchmarks/features_profile.py's `profile_query` (of this checkout)."""
    spec = importlib.util.spec_from_file_location("features_profile", HERE / "features_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.profile_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, required=True, help="the checkout whose features/ to profile")
    parser.add_argument("--data", type=Path, required=True, help="a folder with validated/ and validation.json")
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    profile_query = profiler()
    sys.path.insert(0, str(args.code.resolve()))  # that checkout's features/
    import ibis
    import pandas as pd
    import yaml

    from features.build import features_at, shared_tables
    from features.checks import check_feature_invariants
    from features.cutoffs import FeatureParams
    from features.inputs import read_validated

    as_of = pd.Timestamp(json.loads((args.data / "validation.json").read_text())["as_of"])
    block = dict(yaml.safe_load((args.code / "params.yaml").read_text())["features"])
    block.pop("strategy", None)
    params = FeatureParams.from_dict(block)
    cutoff = pd.Timestamp(args.cutoff)
    con = ibis.duckdb.connect()
    inputs = read_validated(con, args.data / "validated", as_of)
    steps: dict[str, dict[str, float]] = {}
    steps["shared_tables"], shared = timed(lambda: shared_tables(inputs, params, cache=True))
    steps["build_expression"], expression = timed(lambda: features_at(inputs, cutoff, params, shared))
    steps["compile_sql"], sql = timed(lambda: str(ibis.to_sql(expression, dialect="duckdb")))
    con._run_pre_execute_hooks(expression)  # registers the in-memory tables (BG/NBD's) the SQL names
    with tempfile.TemporaryDirectory(prefix="churn-explain-") as tmp:
        steps["query_profiled"], explain = timed(lambda: profile_query(con.con, sql, Path(tmp) / "profile.json"))
    steps["query_to_arrow_and_checks"], rows = timed(lambda: _checked_rows(expression, check_feature_invariants))
    result = {
        "benchmark": "features_explain",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/features_explain.py", *sys.argv[1:]]),
        "code": str(args.code),
        "code_commit": subprocess.run(
            ["git", "-C", str(args.code), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "cutoff": str(cutoff.date()),
        "rows": rows,
        "load_1min_after": float(Path("/proc/loadavg").read_text().split()[0]),
        "steps_seconds": steps,
        "explain_analyze": explain,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"steps_seconds": steps, "rows": rows}))


def _checked_rows(expression: Any, check: Callable[[Any], None]) -> int:
    """The query again, as the stage runs it: to Arrow, checked; the number of rows."""
    batch = expression.to_pyarrow()
    check(batch)
    return int(batch.num_rows)


if __name__ == "__main__":
    main()
