"""The basket part at every cutoff of the schedule: the query (`basket_part` on the cached line facts, what each
cutoff ran before) against `RunningBasket` (what the features stage runs now), in one process on the same line
facts. CPU and wall seconds per cutoff for each, the running basket's one-off cost (reading the facts into memory
and sorting them), and whether the two agree at every cutoff (counts and medians to the bit, unit sums within
1e-12 relative).

    nice -n 5 .venv/bin/python benchmarks/running_basket.py --data /tmp/s9-1m \\
        --out benchmarks/results/running_basket_1m_s11.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features_explain import timed  # noqa: E402  (this folder is the script's first path entry)

from features.basket import RunningBasket, basket_part, line_facts  # noqa: E402
from features.cutoffs import FeatureParams, cutoff_schedule  # noqa: E402
from features.inputs import read_validated  # noqa: E402


def peak_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def disagreements(query: pa.Table, running: pa.Table) -> list[str]:
    """The columns in which the two parts differ (rows matched by customer)."""
    query, running = query.sort_by("customer_id"), running.sort_by("customer_id")
    if query.num_rows != running.num_rows:
        return ["rows"]
    differing = []
    for column in query.column_names:
        want = query.column(column).to_numpy(zero_copy_only=False)
        have = running.column(column).to_numpy(zero_copy_only=False)
        same = np.allclose(have, want, rtol=1e-12, atol=0) if column == "basket_units" else (have == want).all()
        if not same:
            differing.append(column)
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared shop: validated/ and validation.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    as_of = pd.Timestamp(json.loads((args.data / "validation.json").read_text())["as_of"])
    block = dict(yaml.safe_load((ROOT / "params.yaml").read_text())["features"])
    block.pop("strategy", None)
    params = FeatureParams.from_dict(block)
    cutoffs = cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)
    inputs = read_validated(ibis.duckdb.connect(), args.data / "validated", as_of)
    facts = line_facts(inputs)
    assert facts is not None, "the shop has no order lines"
    load_before = float(Path("/proc/loadavg").read_text().split()[0])
    cache_time, cached = timed(facts.cache)
    read_time, arrow = timed(cached.to_pyarrow)
    build_time, running = timed(lambda: RunningBasket(arrow))
    per_cutoff = []
    for cutoff in cutoffs:
        query_time, query = timed(lambda cutoff=cutoff: basket_part(cached, cutoff).to_pyarrow())  # type: ignore[union-attr]
        running_time, mine = timed(lambda cutoff=cutoff: running.at(cutoff))
        per_cutoff.append(
            {
                "cutoff": str(cutoff.date()),
                "rows": query.num_rows,
                "query": query_time,
                "running": running_time,
                "differing_columns": disagreements(query, mine),
            }
        )
        print(json.dumps(per_cutoff[-1]), flush=True)
    result = {
        "benchmark": "running_basket",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/running_basket.py", *sys.argv[1:]]),
        "lines": cached.count().to_pyarrow().as_py(),
        "cutoffs": len(cutoffs),
        "load_1min_before": load_before,
        "load_1min_after": float(Path("/proc/loadavg").read_text().split()[0]),
        "once": {"line_facts_cached": cache_time, "read_into_memory": read_time, "sort_and_index": build_time},
        "total_cpu": {
            "query": round(sum(row["query"]["cpu"] for row in per_cutoff), 2),
            "running": round(sum(row["running"]["cpu"] for row in per_cutoff), 2),
        },
        "all_agree": all(not row["differing_columns"] for row in per_cutoff),
        "peak_gib": peak_gib(),
        "per_cutoff": per_cutoff,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("once", "total_cpu", "all_agree", "peak_gib")}))


if __name__ == "__main__":
    main()
