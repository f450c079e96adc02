"""How many stratified dropout draws the observable oracle needs: its probabilities and figures at a few draw counts
against a reference count, on the test customers of a shop that `prepare.py` (or `dvc repro`) made.

The history is built once and each draw count runs the oracle's importance sampling on it (as `evaluate` does, on
the same threads). Per draw count: the largest and mean absolute difference of a customer's probability from the
reference's, the observable oracle's ROC-AUC and Brier score, the share of the gap from the best baseline to it
that the model closes (the model's and the best baseline's ROC-AUC from the run's evaluation.json, on the same
customers), and the sampling's wall and CPU seconds (the process's, every thread).

    nice -n 5 .venv/bin/python benchmarks/oracle_draws.py --shop /tmp/s9-1m --evaluation /tmp/run/evaluation.json \
        --reference 1000 --draws 250 500 --out benchmarks/results/oracle_draws_1m.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from generate_validate import REPO, machine_info

# The repository's features/ package, not benchmarks/features.py next to this script.
sys.path.insert(0, str(REPO))
from features.build import LABEL
from models.artifact import load_model
from models.dataset import labelled, read_cutoff_rows
from models.metrics import score_metrics
from pipelines.sources.synthetic import SyntheticShopParams
from pipelines.sources.synthetic_oracle import (
    COLUMNS_READ,
    _churn_probability,
    _rate_prior,
    label_window,
    observed_history,
)
from pipelines.stages.evaluate import read_tables
from pipelines.stages.generate import TRUTH_PARAMS


def shop_paths(shop: Path) -> dict[str, Path]:
    """The inputs in a folder `prepare.py` made (features.parquet, backtest/) or in a repository after `dvc repro`
    (data/features/features.parquet, data/models/backtest/)."""
    if (shop / "features.parquet").is_file():
        return {name: shop / name for name in ("features.parquet", "backtest", "validated", "truth")}
    data = shop / "data"
    return {
        "features.parquet": data / "features/features.parquet",
        "backtest": data / "models/backtest",
        "validated": data / "validated",
        "truth": data / "truth",
    }


def gap_closed(model_auc: float, baseline_auc: float, oracle_auc: float) -> float | None:
    gap = oracle_auc - baseline_auc
    return (model_auc - baseline_auc) / gap if gap > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shop", type=Path, required=True)
    parser.add_argument("--evaluation", type=Path, required=True, help="an evaluation.json of `evaluate` on the shop")
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--draws", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    paths = shop_paths(args.shop)
    training = load_model(paths["backtest"]).training
    cutoff = pd.Timestamp(training["deploy_at"])
    test_rows = labelled(read_cutoff_rows(paths["features.parquet"], cutoff))
    labels = test_rows[LABEL].to_numpy(dtype=np.int8)
    evaluation = json.loads(args.evaluation.read_text())
    best = evaluation["comparison"]["best_baseline"]
    model_auc, baseline_auc = (evaluation["overall"][name]["roc_auc"] for name in ("lightgbm", best))
    shop_params = SyntheticShopParams.from_dict(json.loads((paths["truth"] / TRUTH_PARAMS).read_text()))
    tables = read_tables(paths["validated"], COLUMNS_READ)
    started = time.perf_counter()
    history = observed_history(tables, pd.Index(test_rows["customer_id"]), cutoff, shop_params)
    history_seconds = time.perf_counter() - started
    del tables
    prior = _rate_prior(history, cutoff, shop_params)
    window = label_window(cutoff, training["horizon_days"], shop_params)
    probabilities: dict[int, np.ndarray] = {}
    runs: dict[str, dict[str, Any]] = {}
    for draws in (args.reference, *args.draws):
        wall, cpu = time.perf_counter(), time.process_time()
        probabilities[draws] = _churn_probability(history, prior, window, shop_params, draws)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        figures = score_metrics(labels, probabilities[draws], probabilities[draws], evaluation["contact_k"])
        difference = np.abs(probabilities[draws] - probabilities[args.reference])
        runs[str(draws)] = {
            "sampling_seconds": round(wall, 2),
            "sampling_cpu_seconds": round(cpu, 2),
            "roc_auc": figures["roc_auc"],
            "brier": figures["brier"],
            "gap_closed": gap_closed(model_auc, baseline_auc, figures["roc_auc"]),
            "max_abs_difference": float(difference.max()),
            "mean_abs_difference": float(difference.mean()),
            "roc_auc_difference": figures["roc_auc"] - runs.get(str(args.reference), figures)["roc_auc"],
        }
        print(draws, runs[str(draws)], flush=True)
    reference = runs[str(args.reference)]
    for values in runs.values():
        closed, reference_closed = values["gap_closed"], reference["gap_closed"]
        values["gap_closed_difference"] = (
            closed - reference_closed if closed is not None and reference_closed is not None else None
        )
    result = {
        "shop": str(args.shop),
        "test_cutoff": cutoff.date().isoformat(),
        "customers": len(labels),
        "evaluation": {"model_roc_auc": model_auc, "best_baseline": best, "baseline_roc_auc": baseline_auc,
                       "observable_oracle_roc_auc": evaluation["overall"]["observable_oracle"]["roc_auc"]},
        "history_seconds": round(history_seconds, 2),
        "reference_draws": args.reference,
        "runs": runs,
        "machine": machine_info(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
