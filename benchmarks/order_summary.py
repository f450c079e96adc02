"""The order summary at the features stage's cutoffs, by the engine (`order_summary`, DuckDB) and in memory
(`OrdersInMemory`, what the stage uses on DuckDB), on one validated shop: CPU seconds per cutoff each way, the
in-memory structure's setup, and how far the two tables are apart (counts, times and extremes must be equal; sums,
means and the gaps' standard deviation may differ by float rounding).

The in-memory summary runs at every cutoff in time order (as the stage takes them); the engine's at every
`--every`-th cutoff and the last, where the two are compared.

    .venv/bin/python benchmarks/order_summary.py --data /tmp/s9-1m --out benchmarks/results/order_summary_1m_s13.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features.build import shared_tables  # noqa: E402
from features.cutoffs import FeatureParams, cutoff_schedule  # noqa: E402
from features.inputs import read_validated  # noqa: E402
from features.orders import order_summary  # noqa: E402
from pipelines.params import block, load_params  # noqa: E402

# Float columns whose values add in another order in memory; the gaps' deviation is compared to the gaps' size.
ROUNDED = ("invoice_share", "value_sum", "value_mean", "value_365d", "value_90d", "value_prev_90d", "gap_mean_days")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    started = cpu_seconds()
    result = what()
    return round(cpu_seconds() - started, 3), result


def differences(engine: pa.Table, in_memory: pa.Table) -> dict[str, float]:
    """Per float column the largest relative difference (the gaps' deviation: relative to the mean gap); raises
    where a count, time or extreme differs at all."""
    engine, in_memory = engine.sort_by("customer_id"), in_memory.sort_by("customer_id")
    if engine.schema != in_memory.schema or engine.num_rows != in_memory.num_rows:
        raise AssertionError("the two summaries differ in schema or rows")
    found = {}
    for column in engine.column_names:
        want, have = engine.column(column).to_pandas(), in_memory.column(column).to_pandas()
        if column in ROUNDED or column == "gap_std_days":
            if not (want.isna() == have.isna()).all():
                raise AssertionError(f"{column}: nulls differ")
            scale = engine.column("gap_mean_days").to_pandas() if column == "gap_std_days" else want
            found[column] = float(np.nan_to_num(((want - have).abs() / scale.abs()).max()))
        elif not want.equals(have):
            raise AssertionError(f"{column} differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder with validated/ and validation.json")
    parser.add_argument("--every", type=int, default=10, help="compare with the engine at every n-th cutoff")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import ibis

    as_of = pd.Timestamp(json.loads((args.data / "validation.json").read_text())["as_of"])
    feature_block = dict(block(load_params(REPO / "params.yaml"), "features"))
    feature_block.pop("strategy", None)
    params = FeatureParams.from_dict(feature_block)
    inputs = read_validated(ibis.duckdb.connect(), args.data / "validated", as_of)
    shared = shared_tables(inputs, params, cache=True, line_flags=False)
    setup, in_memory = timed(
        lambda: shared_tables(inputs, params, cache=True, line_flags=False, in_memory_orders=True).orders_in_memory
    )
    cutoffs = cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)
    rows = []
    for index, cutoff in enumerate(cutoffs):
        seconds, summary = timed(lambda cutoff=cutoff: in_memory.summary_at(cutoff))
        row: dict[str, Any] = {"cutoff": str(cutoff.date()), "customers": summary.num_rows, "in_memory_cpu": seconds}
        if index % args.every == 0 or index == len(cutoffs) - 1:
            engine_seconds, engine = timed(
                lambda cutoff=cutoff: order_summary(shared.orders, cutoff, shared.levels).to_pyarrow()
            )
            row.update(engine_cpu=engine_seconds, largest_relative_differences=differences(engine, summary))
        rows.append(row)
        print(json.dumps(row), flush=True)
    compared = [row for row in rows if "engine_cpu" in row]
    result = {
        "benchmark": "order_summary",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/order_summary.py", *sys.argv[1:]]),
        "data": str(args.data),
        "cutoffs": len(cutoffs),
        "load_1min_after": float(Path("/proc/loadavg").read_text().split()[0]),
        # The setup includes reading the order facts out of DuckDB (the shared tables themselves are cached first).
        "in_memory_setup_cpu": setup,
        "in_memory_cpu_all_cutoffs": round(sum(row["in_memory_cpu"] for row in rows), 2),
        "compared_cutoffs": {
            "in_memory_cpu": round(sum(row["in_memory_cpu"] for row in compared), 2),
            "engine_cpu": round(sum(row["engine_cpu"] for row in compared), 2),
        },
        "per_cutoff": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
