"""Benchmark the `features` stage (Ibis on DuckDB) at one and at 12 cutoffs, against plain pandas at one cutoff.

Every measured step runs as its own subprocess (this script with `--step`), so its wall time and peak RSS
(ru_maxrss from os.wait4) are its own, imports and reading the Parquet files included:

    ibis_1_cutoff                    write_features(..., [2025-09-18], strategy="per_cutoff")
    pandas_1_cutoff                  benchmarks/pandas_features.py at 2025-09-18, written to Parquet
    pandas_1_cutoff_categorical_ids  the same with customer and order ids as pandas categoricals
    ibis_12_per_cutoff               write_features(..., the last 12 labelled cutoffs, strategy="per_cutoff")
    ibis_12_one_query                write_features(..., the last 12 labelled cutoffs, strategy="one_query")
    ibis_12_one_query_duckdb_8gb     the same on a DuckDB connection with memory_limit 8 GiB (an experiment: the
                                     stage cannot set it); run only when named in --steps
    baseline_ibis_1_cutoff           ibis_1_cutoff with the code of another checkout (--baseline, e.g. a git
    baseline_ibis_12_per_cutoff      worktree of an earlier commit), run by that checkout's own copy of this script,
                                     interleaved with the rest; their outputs are compared with this code's in full
    ibis_all_per_cutoff              write_features(..., every cutoff of the stage's schedule in params.yaml, 31 on
    baseline_ibis_all_per_cutoff     the synthetic shop), this code and the baseline's: run only when named

write_features is what the stage runs to build and write the table; by cutoff it also checks each cutoff's rows
before writing them (since issue 16: code before that checked them afterwards by reading the file back, which is not
measured here, so an old checkout's write_features does less of the stage's work); the summary and dictionary
afterwards are not measured. A run is killed (and recorded as such,
with the RSS it had reached and how long it had run) after --max-seconds, above --max-gib of RSS, or when the
machine's available memory falls below --min-available-gib: the machine may be shared.

The validated data is made once per folder (`churn generate` + `churn validate`, not measured) and reused:

    .venv/bin/python benchmarks/features.py --data /tmp/churn-features-1m --customers 1000000 --repeats 3

Old and new code in the same run (the machine is shared: only interleaved runs compare fairly):

    git worktree add /tmp/features-old c406886
    .venv/bin/python benchmarks/features.py --data /tmp/churn-features-1m --baseline /tmp/features-old \
        --steps ibis_1_cutoff baseline_ibis_1_cutoff ibis_12_per_cutoff baseline_ibis_12_per_cutoff pandas_1_cutoff

`--check` compares the pandas implementation with `features_at(...).execute()` column by column on a small shop,
as validated and with edge cases added (missing values, ties), at a few cutoffs:

    .venv/bin/python benchmarks/features.py --check --data /tmp/churn-features-2k --customers 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from generate_validate import GIB, machine_info

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # features/ and pipelines/, when the package is not installed

CHURN = Path(sys.executable).parent / "churn"
PACKAGES = ("ibis-framework", "duckdb", "pandas", "pyarrow", "numpy")
ONE_CUTOFF = pd.Timestamp("2025-09-18")
N_CUTOFFS = 12
STEPS: dict[str, dict[str, Any]] = {
    "ibis_1_cutoff": {"engine": "ibis", "cutoffs": 1, "strategy": "per_cutoff"},
    "pandas_1_cutoff": {"engine": "pandas", "cutoffs": 1, "strategy": None},
    "pandas_1_cutoff_categorical_ids": {"engine": "pandas_categorical", "cutoffs": 1, "strategy": None},
    "ibis_12_per_cutoff": {"engine": "ibis", "cutoffs": N_CUTOFFS, "strategy": "per_cutoff"},
    "ibis_12_one_query": {"engine": "ibis", "cutoffs": N_CUTOFFS, "strategy": "one_query"},
    # An experiment, not what the stage runs (its connection has DuckDB's default memory_limit, 80 % of RAM): run
    # only when named in --steps.
    "ibis_12_one_query_duckdb_8gb": {
        "engine": "ibis",
        "cutoffs": N_CUTOFFS,
        "strategy": "one_query",
        "duckdb_memory_limit": "8GiB",
    },
    # The code of --baseline (an earlier checkout), to compare old and new in the same run: only when named.
    "baseline_ibis_1_cutoff": {"engine": "ibis", "cutoffs": 1, "strategy": "per_cutoff", "code": "baseline"},
    "baseline_ibis_12_per_cutoff": {
        "engine": "ibis",
        "cutoffs": N_CUTOFFS,
        "strategy": "per_cutoff",
        "code": "baseline",
    },
    # The stage's default schedule (every cutoff from features.first_cutoff to the as-of time): only when named.
    "ibis_all_per_cutoff": {"engine": "ibis", "cutoffs": "all", "strategy": "per_cutoff"},
    "baseline_ibis_all_per_cutoff": {"engine": "ibis", "cutoffs": "all", "strategy": "per_cutoff", "code": "baseline"},
}
DEFAULT_STEPS = [
    step
    for step, spec in STEPS.items()
    if "duckdb_memory_limit" not in spec and "code" not in spec and spec["cutoffs"] != "all"
]
PANDAS_IDS = ("string ids", "categorical ids")
GOAL_SECONDS, GOAL_GIB, GOAL_SPEEDUP = 60.0, 8.0, 3.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Guard:
    """When a measured run is killed: the machine is shared, and `one_query` once went past 12.7 GB."""

    seconds: float = 900.0
    rss_gib: float = 14.0
    available_gib: float = 1.5


def feature_params() -> Any:
    from features.cutoffs import FeatureParams

    block = dict(yaml.safe_load((REPO / "params.yaml").read_text())["features"])
    block.pop("strategy", None)
    return FeatureParams.from_dict(block)


# --- data ---------------------------------------------------------------------------------------------------------


def prepare(data: Path, customers: int | None) -> None:
    """Generate and validate a shop into `data` unless it is there already (not measured)."""
    if (data / "report.json").is_file() and (data / "validated/orders.parquet").is_file():
        return
    if customers is None:
        raise SystemExit(f"{data} holds no validated shop: pass --customers to make one")
    data.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"]["n_customers"] = customers
    params["data"]["path"] = str(data / "raw")
    (data / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    print(f"making a validated shop of {customers:,} customers in {data} ...", flush=True)
    params_path, raw, truth = str(data / "params.yaml"), str(data / "raw"), str(data / "truth")
    churn = str(CHURN)
    validated, quarantine = str(data / "validated"), str(data / "quarantine")
    reports = ["--report", str(data / "report.json"), "--report-md", str(data / "report.md")]
    for command in (
        [churn, "generate", "--params", params_path, "--out", raw, "--truth", truth],
        [churn, "validate", "--params", params_path, "--validated", validated, "--quarantine", quarantine, *reports],
    ):
        subprocess.run(command, cwd=REPO, check=True)


def as_of_of(data: Path) -> pd.Timestamp:
    return pd.Timestamp(json.loads((data / "report.json").read_text())["as_of"])


def benchmark_cutoffs(as_of: pd.Timestamp) -> list[pd.Timestamp]:
    """The last 12 labelled cutoffs of the schedule in params.yaml (2025-09-18 is the last)."""
    from features.cutoffs import cutoff_schedule, label_observed

    params = feature_params()
    schedule = cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)
    labelled = [c for c in schedule if label_observed(c, params.horizon_days, as_of)]
    if ONE_CUTOFF not in labelled:
        raise SystemExit(f"{ONE_CUTOFF.date()} is not a labelled cutoff of the schedule")
    return labelled[-N_CUTOFFS:]


def all_cutoffs(as_of: pd.Timestamp) -> list[pd.Timestamp]:
    """The stage's schedule from params.yaml: every cutoff from features.first_cutoff to the as-of time."""
    from features.cutoffs import cutoff_schedule

    params = feature_params()
    return cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)


# --- one measured step (child process) ----------------------------------------------------------------------------


def run_step(args: argparse.Namespace) -> None:
    """Build the features and write them to args.out; in-process timings go to args.timings."""
    started = time.perf_counter()
    cutoffs = [pd.Timestamp(c) for c in args.cutoffs]
    as_of = pd.Timestamp(args.as_of)
    params = feature_params()
    timings: dict[str, float] = {}
    if args.step in ("pandas", "pandas_categorical"):
        import pandas_features

        imported = time.perf_counter()
        tables = pandas_features.read_tables(args.validated, categorical_ids=args.step == "pandas_categorical")
        read = time.perf_counter()
        frames = [pandas_features.features_at(tables, cutoff, params, as_of) for cutoff in cutoffs]
        built = time.perf_counter()
        pd.concat(frames, ignore_index=True).to_parquet(args.out, index=False)
        timings["build_seconds"] = built - read
    else:
        import ibis

        from features.inputs import read_validated
        from pipelines.stages.features import write_features

        imported = time.perf_counter()
        # The stage's connection (pipelines/stages/features.py) is ibis.duckdb.connect() with DuckDB's defaults.
        config = {"memory_limit": args.duckdb_memory_limit} if args.duckdb_memory_limit else {}
        inputs = read_validated(ibis.duckdb.connect(**config), args.validated, as_of)
        read = time.perf_counter()
        write_features(inputs, cutoffs, params, args.out, args.step)
    done = time.perf_counter()
    timings |= {"import_seconds": imported - started, "read_seconds": read - imported, "work_seconds": done - read}
    args.timings.write_text(json.dumps({key: round(value, 3) for key, value in timings.items()}))


def step_command(
    step: str, work: Path, data: Path, cutoffs: list[pd.Timestamp], as_of: pd.Timestamp, baseline: Path | None
) -> list[str]:
    """The command of one measured run: this script with --step, or for a baseline step the baseline checkout's
    copy of it (which imports that checkout's features/ and pipelines/)."""
    spec = STEPS[step]
    mode = spec["strategy"] or spec["engine"]
    chosen = {1: [ONE_CUTOFF], "all": all_cutoffs(as_of)}.get(spec["cutoffs"], cutoffs)
    script = Path(__file__).resolve()
    if spec.get("code") == "baseline":
        if baseline is None:
            raise SystemExit(f"step {step} needs --baseline (a checkout of the code to compare with)")
        script = baseline.resolve() / "benchmarks" / "features.py"
    return [
        *(sys.executable, str(script), "--step", mode),
        *("--validated", str(data / "validated"), "--as-of", as_of.isoformat()),
        *("--out", str(work / f"{step}.parquet"), "--timings", str(work / f"{step}.json")),
        *(["--duckdb-memory-limit", spec["duckdb_memory_limit"]] if "duckdb_memory_limit" in spec else []),
        "--cutoffs",
        *(c.date().isoformat() for c in chosen),
    ]


# --- the benchmark (parent process) -------------------------------------------------------------------------------


def baseline_info(baseline: Path) -> dict[str, Any]:
    """Which code the baseline steps ran: the checkout's commit and whether it had local changes."""

    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(baseline), *command], capture_output=True, text=True).stdout.strip()

    return {
        "path": str(baseline),
        "commit": git("rev-parse", "HEAD"),
        "local_changes": bool(git("status", "--porcelain")),
    }


def rows_per_cutoff(path: Path) -> dict[str, int]:
    import duckdb

    rows = duckdb.sql(f"SELECT cutoff, count(*) FROM read_parquet('{path}') GROUP BY cutoff ORDER BY cutoff").fetchall()
    return {cutoff.date().isoformat(): n for cutoff, n in rows}


def column_profile(path: Path, cutoff: pd.Timestamp) -> dict[str, tuple[float, int]]:
    """Per column at one cutoff: the sum (numbers, booleans) or count of distinct values, and the null count."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}') WHERE cutoff = '{cutoff.isoformat()}'")
    profile = {}
    for name, kind, *_ in con.execute("DESCRIBE t").fetchall():
        if name == "cutoff":
            continue
        value = f"count(DISTINCT {name})" if kind.startswith("VARCHAR") else f"sum({name}::DOUBLE)"
        total, nulls = con.execute(f"SELECT {value}, count(*) - count({name}) FROM t").fetchone()
        profile[name] = (float(total or 0), int(nulls))
    return profile


def same_profile(a: dict[str, tuple[float, int]], b: dict[str, tuple[float, int]]) -> list[str]:
    """Columns whose profile differs (sums to a relative 1e-9: float sums depend on the order of addition)."""
    return sorted(
        name
        for name in a.keys() | b.keys()
        if name not in a
        or name not in b
        or a[name][1] != b[name][1]
        or not np.isclose(a[name][0], b[name][0], rtol=1e-9, atol=1e-6)
    )


def full_comparison(new: Path, old: Path) -> dict[str, Any]:
    """Every row and column of two feature files, rows matched on (customer_id, cutoff): rows only in one of them,
    and per column the values that differ at all and those that differ by more than a relative 1e-12 (nulls equal
    nulls). Float sums and means may differ in the last bit: DuckDB adds floats in whatever order its threads
    finish, so two runs of the same code can too."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet('{new}')")
    con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet('{old}')")
    columns = {name: kind for name, kind, *_ in con.execute("DESCRIBE a").fetchall()}
    old_columns = {name: kind for name, kind, *_ in con.execute("DESCRIBE b").fetchall()}
    if columns != old_columns:
        return {"same_columns_and_types": False, "new": columns, "old": old_columns}
    keys = ("customer_id", "cutoff")
    on = " AND ".join(f"a.{key} = b.{key}" for key in keys)
    rows_a, rows_b, matched = con.execute(
        f"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM a JOIN b ON {on})"
    ).fetchone()
    compared = [name for name in columns if name not in keys]
    counts = []
    for name in compared:
        differs = f"a.{name} IS DISTINCT FROM b.{name}"
        beyond = differs
        if columns[name] in ("DOUBLE", "FLOAT"):
            beyond += f" AND NOT coalesce(abs(a.{name} - b.{name}) <= 1e-12 * abs(b.{name}), false)"
        counts += [f"count(*) FILTER (WHERE {differs})", f"count(*) FILTER (WHERE {beyond})"]
    # One pass over the joined rows for every column.
    found = con.execute(f"SELECT {', '.join(counts)} FROM a JOIN b ON {on}").fetchone()
    differing = {
        name: {"values_not_bit_identical": found[2 * i], "values_beyond_1e-12": found[2 * i + 1]}
        for i, name in enumerate(compared)
        if found[2 * i]
    }
    return {
        "same_columns_and_types": True,
        "rows_new": rows_a,
        "rows_old": rows_b,
        "rows_matched": matched,
        "columns_compared": len(compared),
        "columns_differing": differing,
        "identical_up_to_1e-12": rows_a == rows_b == matched
        and all(column["values_beyond_1e-12"] == 0 for column in differing.values()),
    }


def rss_gib(pid: int) -> float:
    """Resident set size of `pid` now (GiB); 0 once it is gone."""
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0.0
    return resident_pages * PAGE_BYTES / GIB


def available_gib() -> float:
    """MemAvailable of the machine (GiB): what every process on it can still get without swapping or OOM."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("inf")


def measure(command: list[str], log: Path, cwd: Path, guard: Guard) -> dict[str, Any]:
    """Run `command` in `cwd` (DuckDB spills to `cwd`/.tmp); its wall time (s), CPU time (s) and peak RSS (GiB).

    The run is killed, and recorded as unfinished with the reason, the RSS it had and how long it had run, when it
    runs longer than `guard.seconds`, its RSS goes above `guard.rss_gib`, or the machine's available memory falls
    below `guard.available_gib` (the machine is shared). RSS is sampled every 0.1 s; the peak reported is
    ru_maxrss from os.wait4 either way."""
    with log.open("w") as output:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        stopped: dict[str, Any] = {}
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            elapsed, rss, available = time.perf_counter() - started, rss_gib(process.pid), available_gib()
            reason = (
                f"ran longer than {guard.seconds:.0f} s"
                if elapsed > guard.seconds
                else f"RSS above {guard.rss_gib:g} GiB"
                if rss > guard.rss_gib
                else f"machine's available memory below {guard.available_gib:g} GiB"
                if available < guard.available_gib
                else None
            )
            if reason is not None:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                stopped = {
                    "stopped": reason,
                    "stopped_at_gib": round(rss, 3),
                    "stopped_after_seconds": round(elapsed, 1),
                    "machine_available_gib_at_stop": round(available, 2),
                }
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if not stopped and code != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {
        "finished": not stopped,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
        "load_1min_before": round(load, 2),
        **stopped,
    }


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [run for run in runs if run["finished"]]
    result: dict[str, Any] = {
        "runs_started": len(runs),
        "finished_runs": len(done),
        "max_peak_rss_gib": max(run["peak_rss_gib"] for run in runs),
    }
    if not done:
        return result
    seconds = [run["seconds"] for run in done]
    result |= {
        "median_seconds": round(statistics.median(seconds), 2),
        "min_seconds": min(seconds),
        "max_seconds": max(seconds),
        "median_cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in done), 2),
        "median_peak_rss_gib": round(statistics.median(run["peak_rss_gib"] for run in done), 3),
    }
    for key in ("import_seconds", "read_seconds", "work_seconds", "build_seconds"):
        if key in done[0]:
            result[f"median_{key}"] = round(statistics.median(run[key] for run in done), 2)
    return result


def describe(run: dict[str, Any]) -> str:
    if not run["finished"]:
        return f"KILLED at {run['stopped_at_gib']:.2f} GiB after {run['stopped_after_seconds']:.0f} s: {run['stopped']}"
    timings = (
        f"imports {run['import_seconds']:.1f} s, read {run['read_seconds']:.1f} s, work {run['work_seconds']:.1f} s"
    )
    if "build_seconds" in run:
        timings += f" (build {run['build_seconds']:.1f} s)"
    return f"({timings}; cpu {run['cpu_seconds']:.1f} s; load before {run['load_1min_before']:.1f})"


def bench(
    data: Path, repeats: int, steps: list[str], guard: Guard, long_seconds: float, baseline: Path | None
) -> dict[str, Any]:
    """Every step `repeats` times, interleaved (repeat 1 of every step, then repeat 2, ...) so that a busy spell on
    the shared machine does not land on one step only. A step is not run again once it was killed, or once a run
    of it took longer than `long_seconds` (minutes per run: one run, said so in the results)."""
    as_of = as_of_of(data)
    cutoffs = benchmark_cutoffs(as_of)
    report = json.loads((data / "report.json").read_text())
    runs: dict[str, list[dict[str, Any]]] = {step: [] for step in steps}
    consistency: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-features-") as tmp:
        work = Path(tmp)
        for repeat in range(1, repeats + 1):
            for step in steps:
                if any(not run["finished"] or run["seconds"] > long_seconds for run in runs[step]):
                    continue
                command = step_command(step, work, data, cutoffs, as_of, baseline)
                run = measure(command, work / f"{step}.log", work, guard)
                if run["finished"]:
                    run |= json.loads((work / f"{step}.json").read_text())
                runs[step].append(run)
                print(
                    f"{step:<32} {repeat}/{repeats}: {run['seconds']:7.1f} s  {run['peak_rss_gib']:6.2f} GiB  "
                    f"{describe(run)}",
                    flush=True,
                )
        outputs = {step: work / f"{step}.parquet" for step in steps if runs[step][-1]["finished"]}
        population = {step: rows_per_cutoff(path) for step, path in outputs.items()}
        one = ONE_CUTOFF.date().isoformat()
        if len({rows[one] for rows in population.values()}) > 1:
            raise RuntimeError(f"the steps give different populations at {one}: {population}")
        for step in [step for step in outputs if STEPS[step]["strategy"] == "one_query"]:
            if "ibis_12_per_cutoff" not in outputs:
                break
            if population["ibis_12_per_cutoff"] != population[step]:
                raise RuntimeError(f"ibis_12_per_cutoff and {step} give different rows per cutoff")
            consistency[f"ibis_12_per_cutoff_vs_{step}_columns_differing"] = same_profile(
                column_profile(outputs["ibis_12_per_cutoff"], ONE_CUTOFF), column_profile(outputs[step], ONE_CUTOFF)
            )
        for step in ("pandas_1_cutoff", "pandas_1_cutoff_categorical_ids"):
            if {"ibis_1_cutoff", step} <= outputs.keys():
                consistency[f"ibis_1_cutoff_vs_{step}_columns_differing"] = same_profile(
                    column_profile(outputs["ibis_1_cutoff"], ONE_CUTOFF), column_profile(outputs[step], ONE_CUTOFF)
                )
        for step in [step for step in outputs if STEPS[step].get("code") == "baseline"]:
            new = step.removeprefix("baseline_")
            if new in outputs:
                consistency[f"{new}_vs_{step}_in_full"] = full_comparison(outputs[new], outputs[step])
        print(f"consistency of the outputs at {one}: {consistency}", flush=True)
    twelve = [rows for step, rows in population.items() if STEPS[step]["cutoffs"] == N_CUTOFFS]
    return {
        "as_of": as_of.isoformat(),
        "one_cutoff": one,
        "cutoffs": [c.date().isoformat() for c in cutoffs],
        "repeats": repeats,
        "guard": {
            "max_seconds_per_run": guard.seconds,
            "max_rss_gib": guard.rss_gib,
            "min_machine_available_gib": guard.available_gib,
            "not_repeated_after_a_run_longer_than_seconds": long_seconds,
        },
        "rows": {
            "validated": {name: table["accepted"] for name, table in report["tables"].items() if table["present"]},
            "population_per_cutoff": twelve[0] if twelve else next(iter(population.values()), {}),
        },
        "steps": {
            step: {**STEPS[step], **summarise_runs(step_runs), "runs": step_runs} for step, step_runs in runs.items()
        },
        "consistency": consistency,
    }


def ratios_and_goals(result: dict[str, Any]) -> dict[str, Any]:
    """Speed ratios (of medians measured in the same run) and the issue's goals. A step killed for time counts as
    taking at least as long as it ran; a step killed for memory has no time (it would not finish on this machine
    without spilling, or at all), and misses both goals."""
    steps = result["steps"]

    def finished(step: str) -> bool:
        return bool(steps[step]["finished_runs"])

    out: dict[str, Any] = {}
    for step in ("pandas_1_cutoff", "pandas_1_cutoff_categorical_ids"):
        if {"ibis_1_cutoff", step} <= steps.keys() and finished("ibis_1_cutoff") and finished(step):
            out[f"{step}_over_ibis_1_cutoff"] = round(
                steps[step]["median_seconds"] / steps["ibis_1_cutoff"]["median_seconds"], 2
            )
            out[f"{step}_over_ibis_1_cutoff_work_only"] = round(
                steps[step]["median_work_seconds"] / steps["ibis_1_cutoff"]["median_work_seconds"], 2
            )
    if "pandas_1_cutoff_over_ibis_1_cutoff" in out:
        # The goal is against the straightforward pandas (ids as stored); categorical ids are a sensitivity check.
        out["goal_3x_faster_than_pandas"] = out["pandas_1_cutoff_over_ibis_1_cutoff"] >= GOAL_SPEEDUP
    twelve = [step for step in steps if STEPS[step]["cutoffs"] == N_CUTOFFS]
    for step in twelve:
        if finished(step):
            out[f"{step}_median_seconds"] = steps[step]["median_seconds"]
        else:
            killed = steps[step]["runs"][0]
            out[f"{step}_killed"] = (
                f"at {killed['stopped_at_gib']:.2f} GiB after {killed['stopped_after_seconds']:.0f} s: "
                f"{killed['stopped']}"
            )
        out[f"goal_60s_{step}"] = finished(step) and steps[step]["median_seconds"] < GOAL_SECONDS
        out[f"goal_8gib_{step}"] = finished(step) and steps[step]["max_peak_rss_gib"] < GOAL_GIB
    for step in [step for step in steps if STEPS[step]["strategy"] == "one_query"]:
        if "ibis_12_per_cutoff" not in steps:
            break
        per, one = steps["ibis_12_per_cutoff"], steps[step]
        if finished("ibis_12_per_cutoff") and finished(step):
            out[f"{step}_over_ibis_12_per_cutoff"] = round(one["median_seconds"] / per["median_seconds"], 2)
            out[f"faster_of_ibis_12_per_cutoff_and_{step}"] = (
                "ibis_12_per_cutoff" if per["median_seconds"] <= one["median_seconds"] else step
            )
        elif finished("ibis_12_per_cutoff") or finished(step):
            out[f"only_one_finished_of_ibis_12_per_cutoff_and_{step}"] = (
                "ibis_12_per_cutoff" if finished("ibis_12_per_cutoff") else step
            )
    for old in [step for step in steps if STEPS[step].get("code") == "baseline"]:
        new = old.removeprefix("baseline_")
        if new in steps and finished(new) and finished(old):
            out[f"{old}_over_{new}"] = round(steps[old]["median_seconds"] / steps[new]["median_seconds"], 2)
            out[f"{old}_over_{new}_cpu"] = round(steps[old]["median_cpu_seconds"] / steps[new]["median_cpu_seconds"], 2)
            # Repeat i of both ran back to back: the ratio within a pair is less exposed to the machine's load.
            pairs = zip(steps[old]["runs"], steps[new]["runs"], strict=False)
            paired = [a["seconds"] / b["seconds"] for a, b in pairs if a["finished"] and b["finished"]]
            out[f"{old}_over_{new}_paired_runs"] = [round(ratio, 2) for ratio in paired]
    return out


# --- correctness check: pandas against Ibis -----------------------------------------------------------------------


def with_edge_cases(folder: Path, out: Path, seed: int = 7) -> None:
    """The validated tables with what the synthetic shop rarely has: missing statuses, channels, payment methods,
    sign-ups and deliveries; orders, reviews and bad events at the same instant as another (ties)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    tables = {path.stem: pd.read_parquet(path) for path in folder.glob("*.parquet")}
    orders = tables["orders"]

    def some(frame: pd.DataFrame, share: float) -> np.ndarray:
        return rng.random(len(frame)) < share

    # Same instant, another order: ties in "latest", gaps of 0 days, ties in "most common".
    twins = orders[some(orders, 0.05)].copy()
    twins["order_id"] = "X" + twins["order_id"]
    twins["channel"] = rng.choice(["web", "app", "store"], len(twins))
    twins["payment_method"] = rng.choice(["card", "invoice", "wallet"], len(twins))
    twins["status"] = rng.choice(["delivered", "cancelled", "shipped", "returned"], len(twins))
    twins["cancel_reason"] = np.where(twins["status"] == "cancelled", "out_of_stock", None)
    orders = pd.concat([orders, twins], ignore_index=True)
    for column, share in (("status", 0.02), ("channel", 0.03), ("payment_method", 0.03), ("delivered_at", 0.02)):
        orders.loc[some(orders, share), column] = None
    tables["orders"] = orders

    customers = tables["customers"]
    customers.loc[some(customers, 0.05), "signed_up_at"] = None
    customers.loc[some(customers, 0.05), "loyalty_member"] = None

    reviews = tables["reviews"]
    twin_reviews = reviews[some(reviews, 0.1)].copy()
    twin_reviews["review_score"] = rng.integers(1, 6, len(twin_reviews))
    tables["reviews"] = pd.concat([reviews, twin_reviews], ignore_index=True)

    # Complaints at the very moment another bad experience became known (a tie in the last bad experience), on
    # another order of the customer or on none, some resolved fast.
    tickets = tables["tickets"]
    returns = tables["returns"].merge(orders[["order_id", "customer_id"]], on="order_id")
    tied = returns[some(returns, 0.3)]
    other_order = orders.groupby("customer_id")["order_id"].max()
    tied_tickets = pd.DataFrame(
        {
            "ticket_id": "XT" + tied["order_id"],
            "customer_id": tied["customer_id"].to_numpy(),
            "order_id": np.where(rng.random(len(tied)) < 0.5, other_order.loc[tied["customer_id"]].to_numpy(), None),
            "opened_at": tied["returned_at"].to_numpy(),
            "resolved_at": tied["returned_at"].to_numpy() + pd.to_timedelta(rng.uniform(0, 4, len(tied)), "D"),
            "reason": "other",
        }
    )
    tables["tickets"] = pd.concat([tickets, tied_tickets.astype(tickets.dtypes.to_dict())], ignore_index=True)
    for name, frame in tables.items():
        frame = frame.astype(pd.read_parquet(folder / f"{name}.parquet").dtypes.to_dict())
        frame.to_parquet(out / f"{name}.parquet", index=False)


def compare(ibis_frame: pd.DataFrame, pandas_frame: pd.DataFrame) -> dict[str, Any]:
    """Column by column, rows sorted by customer_id: numbers to a relative 1e-9, NaN == NaN."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    problems: dict[str, Any] = {}
    if list(ibis_frame.columns) != list(pandas_frame.columns):
        problems["columns"] = {"ibis": list(ibis_frame.columns), "pandas": list(pandas_frame.columns)}
        return problems
    a = ibis_frame.sort_values("customer_id", ignore_index=True)
    b = pandas_frame.sort_values("customer_id", ignore_index=True)
    if len(a) != len(b) or not (a["customer_id"].astype(str) == b["customer_id"].astype(str)).all():
        problems["rows"] = {"ibis": len(a), "pandas": len(b)}
        return problems
    for column in a.columns:
        x, y = a[column], b[column]
        numeric = all(is_numeric_dtype(s) and not is_bool_dtype(s) for s in (x, y))
        if numeric:
            xs, ys = (s.astype("Float64").to_numpy("float64", na_value=np.nan) for s in (x, y))
            equal = np.isclose(xs, ys, rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            xs, ys = (s.astype(object).where(s.notna(), None).to_numpy() for s in (x, y))
            equal = np.array([u == v for u, v in zip(xs, ys, strict=True)])
        if not equal.all():
            bad = np.flatnonzero(~equal)
            problems[column] = {
                "rows": len(bad),
                "examples": [
                    {"customer_id": str(a["customer_id"][i]), "ibis": str(xs[i]), "pandas": str(ys[i])} for i in bad[:3]
                ],
            }
    return problems


def check(data: Path) -> bool:
    import ibis
    import pandas_features

    from features.build import features_at
    from features.inputs import read_validated

    as_of = as_of_of(data)
    params = feature_params()
    cutoffs = [pd.Timestamp("2023-10-29"), pd.Timestamp("2024-10-23"), ONE_CUTOFF, pd.Timestamp("2025-12-17")]
    ok = True
    with tempfile.TemporaryDirectory(prefix="churn-check-features-") as tmp:
        edge = Path(tmp) / "edge_cases"
        with_edge_cases(data / "validated", edge)
        for variant, folder in (("as validated", data / "validated"), ("with edge cases", edge)):
            inputs = read_validated(ibis.duckdb.connect(), folder, as_of)
            tables = {ids: pandas_features.read_tables(folder, ids == "categorical ids") for ids in PANDAS_IDS}
            for cutoff in cutoffs:
                expected = features_at(inputs, cutoff, params).execute()
                for ids, frames in tables.items():
                    problems = compare(expected, pandas_features.features_at(frames, cutoff, params, as_of))
                    status = "same" if not problems else f"DIFFERENT: {json.dumps(problems, indent=1)}"
                    print(
                        f"{variant:<16} {cutoff.date()} pandas ({ids:<15}): {len(expected):>6,} rows x "
                        f"{expected.shape[1]} columns  {status}"
                    )
                    ok &= not problems
    return ok


# --- command line -------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with validated/ and report.json (made if missing)")
    parser.add_argument("--customers", type=int, help="shop size, to make the data when --data holds none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=DEFAULT_STEPS)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="kill a run after this long")
    parser.add_argument("--max-gib", type=float, default=14.0, help="kill a run whose RSS goes above this")
    parser.add_argument(
        "--min-available-gib", type=float, default=1.5, help="kill a run when the machine has less memory than this"
    )
    parser.add_argument(
        "--long-seconds", type=float, default=300.0, help="do not repeat a step once a run of it took longer"
    )
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the code to compare with, for the baseline_* steps"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/features.json")
    parser.add_argument("--check", action="store_true", help="compare pandas with Ibis instead of timing")
    # One measured step (internal).
    parser.add_argument(
        "--step", choices=["per_cutoff", "one_query", "pandas", "pandas_categorical"], help=argparse.SUPPRESS
    )
    parser.add_argument("--validated", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--cutoffs", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--timings", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-memory-limit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step is None and args.data is None:
        parser.error("--data is required")
    return args


def main() -> None:
    args = parse_args()
    if args.step is not None:
        run_step(args)
        return
    prepare(args.data, args.customers)
    if args.check:
        sys.exit(0 if check(args.data) else 1)
    machine = machine_info(PACKAGES)
    print(
        f"machine: {machine['nproc']} cpus ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, {machine['packages']}",
        flush=True,
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    guard = Guard(args.max_seconds, args.max_gib, args.min_available_gib)
    result = bench(args.data, args.repeats, args.steps, guard, args.long_seconds, args.baseline)
    results = {
        "benchmark": "features",
        "started_utc": started,
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/features.py", *sys.argv[1:]]),
        "machine": machine,
        **({"baseline": baseline_info(args.baseline)} if args.baseline else {}),
        "goals": {
            "seconds_12_cutoffs": GOAL_SECONDS,
            "peak_gib_12_cutoffs": GOAL_GIB,
            "speedup_vs_pandas": GOAL_SPEEDUP,
        },
        **result,
        "comparison": ratios_and_goals(result),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["comparison"], indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
