"""SHAP values for the reasons: LightGBM's pred_contrib against the per-leaf tables of `models/treeshap.py`, on the
same customers of a prepared shop, interleaved, in one process: CPU and wall seconds, the largest difference of any
value, and how often the reasons agree (the top one, and all three in order).

The customers are a seeded sample of the rows at the latest cutoff of the prepared features.parquet (the active
customers of that day, as the score stage's population is at its as-of time), explained by the prepared current
model.

    nice -n 5 .venv/bin/python benchmarks/treeshap.py --prepared /tmp/speed-1m --sample 50000 \
        --out benchmarks/results/treeshap_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from generate_validate import REPO, machine_info
from pipeline import PACKAGES

sys.path.insert(0, str(REPO))
from models.artifact import load_model, model_array
from models.explain import top_reasons
from models.treeshap import tree_tables

CHUNK = 20_000


def latest_rows(features: Path, sample: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `sample` rows at the latest cutoff, indexed by customer."""
    table = pq.read_table(features, columns=["cutoff"])
    latest = pd.Series(table["cutoff"].to_numpy()).max()
    rows = pq.read_table(features, filters=[("cutoff", "=", latest)]).to_pandas()
    chosen = rows.sample(n=min(sample, len(rows)), random_state=seed)
    return chosen.set_index("customer_id")


def timed(compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    values = compute()
    seconds = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    return values, {**{k: round(v, 2) for k, v in seconds.items()}, "load_1min_before": load}


def in_chunks(compute: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> np.ndarray:
    return np.concatenate([compute(rows[start : start + CHUNK]) for start in range(0, len(rows), CHUNK)])


def agreement(exact: pd.DataFrame, tabled: pd.DataFrame, features: pd.DataFrame) -> dict[str, Any]:
    """Shares of customers whose reasons from `tabled` are those from `exact`."""
    first, second = top_reasons(exact, features), top_reasons(tabled, features)
    with_reason = first["reason_1_feature"].notna()
    same_top = first["reason_1_feature"].eq(second["reason_1_feature"]) | (
        first["reason_1_feature"].isna() & second["reason_1_feature"].isna()
    )
    same_all = (first.fillna("") == second.fillna("")).all(axis=1)
    return {
        "customers": len(first),
        "with_a_reason": int(with_reason.sum()),
        "top_reason_same": round(float(same_top.mean()), 6),
        "top_reason_same_among_those_with_one": round(float(same_top[with_reason].mean()), 6),
        "all_three_reasons_same": round(float(same_all.mean()), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = load_model(args.prepared / "current")
    features = latest_rows(args.prepared / "features.parquet", args.sample, args.seed)
    matrix = model.matrix(features)
    rows = model_array(matrix)
    tables, building = timed(lambda: tree_tables(model.booster))  # includes loading numba's compiled code
    runs: dict[str, list[dict[str, float]]] = {"pred_contrib": [], "tables": []}
    for _ in range(args.repeats):
        exact, run = timed(lambda: in_chunks(lambda part: model.booster.predict(part, pred_contrib=True), rows))
        runs["pred_contrib"].append(run)
        tabled, run = timed(lambda: in_chunks(tables.contributions, rows))
        runs["tables"].append(run)
        print({name: values[-1] for name, values in runs.items()}, flush=True)
    columns = [*model.model_input.features, "bias"]
    exact_frame = pd.DataFrame(exact, columns=columns, index=features.index)
    tabled_frame = pd.DataFrame(tabled, columns=columns, index=features.index)
    medians = {name: float(np.median([run["cpu_seconds"] for run in values])) for name, values in runs.items()}
    result = {
        "benchmark": "treeshap",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/treeshap.py", *sys.argv[1:]]),
        "machine": machine_info(PACKAGES),
        "prepared": str(args.prepared),
        "model": {"trees": model.booster.num_trees(), "features": len(model.model_input.features)},
        "customers": len(features),
        "table_build": building,
        "table_megabytes": round(tables.table.nbytes / 2**20, 1),
        "runs": runs,
        "cpu_ms_per_customer": {name: round(1000 * cpu / len(features), 4) for name, cpu in medians.items()},
        "cpu_ratio_tables_to_pred_contrib": round(medians["tables"] / medians["pred_contrib"], 3),
        "max_abs_difference": float(np.abs(exact - tabled).max()),
        "reasons": agreement(exact_frame, tabled_frame, features),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("cpu_ms_per_customer", "max_abs_difference", "reasons")}))


if __name__ == "__main__":
    main()
