"""`btyd_part` (BG/NBD fitted at a cutoff, its quantities for the population) of an older checkout against this one,
in one process on the same cached order summaries: CPU seconds per call at every cutoff of the schedule (old then
new) and whether the two give the same bytes there (the part's rows, the fitted parameters); repeated calls,
interleaved, at one cutoff; and a cProfile of one call of each (wall-clock seconds, as cProfile counts them).

The older `features/btyd.py` is loaded from `--baseline` as a module of its own; everything it imports (the order
summary, the engine) is this checkout's, so the comparison isolates the file. The shared tables are computed and
cached first, as the features stage does, and each cutoff's order summary is cached before the calls.

    nice -n 5 .venv/bin/python benchmarks/btyd_part.py --baseline /work/wt-base-s10 --data /tmp/h10b/k250 \\
        --repeats 7 --out benchmarks/results/btyd_part_250k_s10.json
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import pstats
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features import btyd  # noqa: E402
from features.build import shared_tables  # noqa: E402
from features.cutoffs import FeatureParams, cutoff_schedule  # noqa: E402
from features.inputs import read_validated  # noqa: E402
from features.orders import order_summary  # noqa: E402


def cpu_seconds() -> float:
    """This process's user + system seconds, every thread (DuckDB's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_baseline(checkout: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_btyd", checkout / "features" / "btyd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(CPU, wall) seconds of one call."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    call()
    return cpu_seconds() - cpu, time.perf_counter() - wall


def profiled(call: Callable[[], Any], top: int) -> dict[str, Any]:
    """One call under cProfile: its total and the `top` functions by cumulative time."""
    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    rows = [
        {"function": f"{Path(path).name}:{line}({name})", "calls": calls, "own_s": round(own, 4),
         "cum_s": round(cumulative, 4)}
        for (path, line, name), (_, calls, own, cumulative, _) in table.items()
    ]  # fmt: skip
    rows.sort(key=lambda row: -float(str(row["cum_s"])))
    return {"total_s": round(sum(own for _, _, own, _, _ in table.values()), 4), "top": rows[:top]}


def rows_of(part: ibis.Table) -> pa.Table:
    return part.to_pyarrow().sort_by("customer_id")


def same_bytes(old: pa.Table, new: pa.Table) -> dict[str, Any]:
    """Whether two parts have the same schema, ids and float bits per column."""
    columns = {
        name: bool(
            np.array_equal(old.column(name).to_numpy().view(np.uint64), new.column(name).to_numpy().view(np.uint64))
        )
        for name in btyd.BTYD_COLUMNS
    }
    return {
        "rows": new.num_rows,
        "schema": old.schema.equals(new.schema),
        "ids": old.column("customer_id").equals(new.column("customer_id")),
        "columns": columns,
        "identical": old.schema.equals(new.schema)
        and old.column("customer_id").equals(new.column("customer_id"))
        and all(columns.values()),
    }


def fitted_params(baseline: ModuleType, summary: ibis.Table, cutoff: pd.Timestamp, window: int) -> dict[str, Any]:
    """The fit of the old code (its pandas path) and of the new (from the history's columns), on one history."""
    history = btyd.btyd_history(summary, cutoff, window).to_pyarrow()
    frame = history.to_pandas()
    has_order = frame["orders_total"].to_numpy() > 0
    old = baseline.fit_bg_nbd(baseline.rfm_summary(frame)[has_order])
    orders, first, last = btyd.history_arrays(frame)
    x, t_x, age = btyd.rfm_values(orders, first, last)
    new = btyd.fit_bg_nbd_values(x[has_order], t_x[has_order], age[has_order])
    as_dict = {name: getattr(new, name) for name in ("r", "alpha", "a", "b")}
    return {"identical": tuple(vars(old).values()) == tuple(vars(new).values()), "new": as_dict,
            "history_rows": history.num_rows, "fitted_customers": int(has_order.sum())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the older checkout (its features/btyd.py)")
    parser.add_argument("--data", type=Path, required=True, help="a folder with validated/ and validation.json")
    parser.add_argument("--cutoff", help="the timed cutoff (default: the schedule's last)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    baseline = load_baseline(args.baseline)
    as_of = pd.Timestamp(json.loads((args.data / "validation.json").read_text())["as_of"])
    block = dict(yaml.safe_load((ROOT / "params.yaml").read_text())["features"])
    block.pop("strategy", None)
    params = FeatureParams.from_dict(block)
    cutoffs = cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)
    timed_cutoff = pd.Timestamp(args.cutoff) if args.cutoff else cutoffs[-1]
    con = ibis.duckdb.connect()
    inputs = read_validated(con, args.data / "validated", as_of)
    shared = shared_tables(inputs, params, cache=True)
    codes = {"old": baseline.btyd_part, "new": btyd.btyd_part}

    def call(code: str, summary: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
        return codes[code](summary, cutoff, params.horizon_days, params.active_window_days)

    summary = order_summary(shared.orders, timed_cutoff, shared.levels).cache()
    for code in codes:  # warm: imports, first-call costs
        call(code, summary, timed_cutoff)
    # Every cutoff once, old then new: the CPU seconds the stage spends in btyd_part, and the bytes compared.
    identity = []
    every_cutoff: dict[str, list[float]] = {code: [] for code in codes}
    for cutoff in cutoffs:
        at_cutoff = order_summary(shared.orders, cutoff, shared.levels).cache()
        parts = {}
        for code in codes:
            cpu = cpu_seconds()
            parts[code] = call(code, at_cutoff, cutoff)
            every_cutoff[code].append(round(cpu_seconds() - cpu, 4))
        comparison = same_bytes(rows_of(parts["old"]), rows_of(parts["new"]))
        fit = fitted_params(baseline, at_cutoff, cutoff, params.active_window_days)
        identity.append({"cutoff": str(cutoff.date()), **comparison, "params": fit})
        print(cutoff.date(), comparison["identical"], fit["identical"], every_cutoff["old"][-1],
              every_cutoff["new"][-1], flush=True)  # fmt: skip
    seconds: dict[str, dict[str, list[float]]] = {code: {"cpu": [], "wall": []} for code in codes}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for _ in range(args.repeats):
        for code in codes:
            cpu, wall = timed(lambda code=code: call(code, summary, timed_cutoff))  # type: ignore[misc]
            seconds[code]["cpu"].append(round(cpu, 4))
            seconds[code]["wall"].append(round(wall, 4))
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    profiles = {code: profiled(lambda code=code: call(code, summary, timed_cutoff), 30) for code in codes}  # type: ignore[misc]
    medians = {
        code: {kind: statistics.median(values) for kind, values in runs.items()} for code, runs in seconds.items()
    }
    result = {
        "benchmark": "btyd_part",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/btyd_part.py", *sys.argv[1:]]),
        "baseline": str(args.baseline),
        "baseline_commit": git_head(args.baseline),
        "commit": git_head(ROOT),
        "timed_cutoff": str(timed_cutoff.date()),
        "history_rows": next(
            row["params"]["history_rows"] for row in identity if row["cutoff"] == str(timed_cutoff.date())
        ),
        "population_rows": next(row["rows"] for row in identity if row["cutoff"] == str(timed_cutoff.date())),
        "load_before": load_before,
        "load_after": load_after,
        "seconds": seconds,
        "median": medians,
        "old_over_new_cpu": round(medians["old"]["cpu"] / medians["new"]["cpu"], 2),
        "every_cutoff_cpu": every_cutoff,
        "every_cutoff_cpu_total": {code: round(sum(values), 2) for code, values in every_cutoff.items()},
        "all_identical": all(row["identical"] and row["params"]["identical"] for row in identity),
        "identity_per_cutoff": identity,
        "cprofile": profiles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {key: result[key] for key in ("median", "old_over_new_cpu", "every_cutoff_cpu_total", "all_identical")}
        )
    )


def git_head(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


if __name__ == "__main__":
    main()
