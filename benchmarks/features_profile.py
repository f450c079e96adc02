"""Where the `features` stage spends its time: one process, one DuckDB connection, on a validated shop.

    .venv/bin/python benchmarks/features_profile.py --data /tmp/churn-features-1m

1. The tables every cutoff shares (`shared_tables`), computed and cached once as the stage does; then each feature
   group of `features_at` at 2025-09-18 on its own (`.to_pyarrow()`; the groups compute their own order facts), then
   the whole query, on the validated Parquet files as the stage reads them (`read_validated`: DuckDB views over the
   files).
2. The whole query under DuckDB's profiler (the JSON form of EXPLAIN ANALYZE): time per operator type, and how
   often each Parquet file is scanned.
3. Every one of the 12 benchmark cutoffs, one query each (what `per_cutoff` does), to see whether one dominates.
4. An experiment outside the stage's code: the same query at 2025-09-18 after loading the Parquet files into DuckDB
   tables once (`CREATE TABLE ... AS SELECT * FROM read_parquet(...)`), to size what re-reading the files costs.

Timings are single runs on a shared machine: they locate the cost, the benchmark (features.py) measures it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generate_validate import machine_info

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # the project's features/ package, before benchmarks/features.py
PACKAGES = ("ibis-framework", "duckdb", "pyarrow")


def benchmark_module() -> Any:
    """benchmarks/features.py (its name is taken by the project's features package): cutoffs and params."""
    spec = importlib.util.spec_from_file_location("features_benchmark", HERE / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # before running it: its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = what()
    return round(time.perf_counter() - started, 2), result


def operators(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operator of a DuckDB JSON profile, depth first (DuckDB 2: the root's "operator" list)."""
    found = []
    for child in node.get("operator", []) + node.get("children", []):
        found.append(child)
        found.extend(operators(child))
    return found


def short(info: dict[str, Any]) -> str:
    """The operator's details in one line: what it groups, joins, sorts or reads."""
    keys = ("Filename(s)", "Groups", "Aggregates", "Conditions", "Join Type", "Partition By", "Order By", "Function")
    return "; ".join(f"{key}: {str(info[key])[:90]}" for key in keys if key in info)


def profile_query(raw: Any, sql: str, output: Path) -> dict[str, Any]:
    """Run `sql` under DuckDB's profiler; the operators' time by type, the Parquet scans by file and the most
    expensive operators."""
    raw.execute("PRAGMA enable_profiling = 'json'")
    raw.execute(f"PRAGMA profiling_output = '{output}'")
    started = time.perf_counter()
    relation = raw.sql(sql)
    (getattr(relation, "to_arrow_table", None) or relation.arrow)()  # DuckDB 2 renamed arrow()
    seconds = time.perf_counter() - started
    raw.execute("PRAGMA disable_profiling")
    profile = json.loads(output.read_text())
    nodes = operators(profile)
    by_type: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    scans: dict[str, dict[str, float]] = defaultdict(lambda: {"scans": 0, "seconds": 0.0, "rows_scanned": 0})
    for node in nodes:
        kind = node.get("type") or node.get("operator_type", "?")
        timing = float(node.get("timing", node.get("operator_timing", 0.0)))
        by_type[kind] += timing
        counts[kind] += 1
        if kind == "TABLE_SCAN":
            files = str(node.get("extra_info", {}).get("Filename(s)", "?"))
            scans[Path(files).stem]["scans"] += 1
            scans[Path(files).stem]["seconds"] += timing
            scans[Path(files).stem]["rows_scanned"] += int(node.get("rows_scanned", 0))
    operator_total = sum(by_type.values())
    top = sorted(nodes, key=lambda node: -float(node.get("timing", 0.0)))[:15]
    return {
        "wall_seconds": round(seconds, 2),
        "operators": len(nodes),
        "operator_seconds_total": round(operator_total, 2),
        "note": "operator timings are summed over threads, so they can add up to more than the wall time",
        "bytes_read": profile.get("io", {}).get("total_bytes_read"),
        "by_operator_type": {
            kind: {"operators": counts[kind], "seconds": round(total, 2), "share": round(total / operator_total, 3)}
            for kind, total in sorted(by_type.items(), key=lambda item: -item[1])
        },
        "parquet_scans_by_table": {
            table: {**value, "seconds": round(value["seconds"], 2)} for table, value in sorted(scans.items())
        },
        "top_operators": [
            {
                "type": node.get("type"),
                "seconds": round(float(node.get("timing", 0.0)), 2),
                "rows_out": node.get("intermediate_rows"),
                "detail": short(node.get("extra_info", {})),
            }
            for node in top
        ],
    }


def run(data: Path, every_cutoff: bool) -> dict[str, Any]:
    import ibis

    from features.build import features_at, shared_tables
    from features.inputs import inputs_from_tables, read_validated
    from features.labels import churn_labels, population
    from features.relationship import relationship_features
    from features.rfm import rfm_and_trend_features
    from features.satisfaction import satisfaction_features

    bench = benchmark_module()
    as_of, params, cutoff = bench.as_of_of(data), bench.feature_params(), bench.ONE_CUTOFF
    validated = data / "validated"
    con = ibis.duckdb.connect()
    read_seconds, inputs = timed(lambda: read_validated(con, validated, as_of))
    # What the stage computes once per run, as it does it (cached on the connection).
    shared_seconds, shared = timed(lambda: shared_tables(inputs, params, cache=True))
    print(f"shared tables (order facts, bad events, reviews) cached in {shared_seconds:.1f} s", flush=True)
    parts: dict[str, Callable[[], Any]] = {
        "population": lambda: population(inputs.orders, cutoff, params.active_window_days).to_pyarrow(),
        "rfm_and_trend_features": lambda: rfm_and_trend_features(inputs.orders, cutoff).to_pyarrow(),
        "satisfaction_features": lambda: satisfaction_features(inputs, shared.events, cutoff, params).to_pyarrow(),
        "relationship_features": lambda: relationship_features(inputs, cutoff).to_pyarrow(),
        "churn_labels": lambda: churn_labels(inputs.orders, cutoff, params.horizon_days, as_of).to_pyarrow(),
        "features_at (the whole query)": lambda: features_at(inputs, cutoff, params, shared).to_pyarrow(),
    }
    groups = {}
    for name, part in parts.items():
        seconds, table = timed(part)
        groups[name] = {"seconds": seconds, "rows": table.num_rows}
        print(f"{cutoff.date()} {name:<34} {seconds:7.1f} s  {table.num_rows:>10,} rows", flush=True)

    sql = str(ibis.to_sql(features_at(inputs, cutoff, params, shared), dialect="duckdb"))
    with tempfile.TemporaryDirectory(prefix="churn-profile-") as tmp:
        explain = profile_query(con.con, sql, Path(tmp) / "profile.json")
    print(f"profiled query: {json.dumps(explain, indent=1)}", flush=True)

    per_cutoff = {}
    if every_cutoff:
        for each in bench.benchmark_cutoffs(as_of):
            seconds, table = timed(lambda each=each: features_at(inputs, each, params, shared).to_pyarrow())
            per_cutoff[each.date().isoformat()] = {"seconds": seconds, "rows": table.num_rows}
            print(f"{each.date()} features_at {seconds:7.1f} s  {table.num_rows:>10,} rows", flush=True)

    loaded = ibis.duckdb.connect()
    load_seconds, tables = timed(
        lambda: {
            path.stem: loaded.create_table(f"loaded_{path.stem}", loaded.read_parquet(path))
            for path in sorted(validated.glob("*.parquet"))
        }
    )
    loaded_inputs = inputs_from_tables(tables, as_of)
    loaded_seconds, table = timed(lambda: features_at(loaded_inputs, cutoff, params).to_pyarrow())
    print(f"tables loaded in {load_seconds:.1f} s; features_at on them {loaded_seconds:.1f} s", flush=True)
    return {
        "cutoff": cutoff.date().isoformat(),
        "read_validated_seconds": read_seconds,
        "shared_tables_seconds": shared_seconds,
        "groups_at_one_cutoff": groups,
        "explain_analyze_at_one_cutoff": explain,
        "features_at_per_cutoff": per_cutoff,
        "experiment_tables_loaded_into_duckdb": {
            "load_seconds": load_seconds,
            "features_at_seconds": loaded_seconds,
            "rows": table.num_rows,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with validated/ and report.json")
    parser.add_argument("--no-every-cutoff", action="store_true", help="skip part 3 (12 queries)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/features_profile.json")
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    result = {
        "benchmark": "features_profile",
        "started_utc": started,
        "command": shlex.join(["python", "benchmarks/features_profile.py", *sys.argv[1:]]),
        "machine": machine_info(PACKAGES),
        **run(args.data, not args.no_every_cutoff),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
