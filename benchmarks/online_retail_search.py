"""The hyperparameter search (`train.search_trials`) on UCI Online Retail: the backtest model at a test cutoff refitted
with a search on its validation customers, against the `full` recipe's backtest model (default params) on the same
test customers (paired bootstrap).

Reads the scratch folder an `online_retail.py --work FOLDER` run left (its params, features and backtest models), so
run that first:

    .venv/bin/python benchmarks/online_retail_search.py --work FOLDER --trials 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from generate_validate import REPO, machine_info

sys.path.insert(0, str(REPO))
from features.build import LABEL
from models.artifact import load_model
from models.bootstrap import bootstrap_roc_auc
from models.dataset import labelled, read_cutoff_rows, read_labelled_rows
from models.metrics import score_metrics
from models.train import TrainParams, fit_recipe
from pipelines.stages.train import available_features, undated_snapshot_features

REPORTED = ("roc_auc", "pr_auc", "brier", "ece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the scratch folder of an online_retail.py run")
    parser.add_argument("--test-cutoff", default="2011-08-25")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/online_retail_search.json")
    args = parser.parse_args()
    tag = args.test_cutoff
    params = yaml.safe_load((args.work / f"params_{tag}_full.yaml").read_text())
    grid = f"grid_{params['features']['every_days']}_{params['features']['first_cutoff']}"
    features, dictionary = args.work / grid / "features.parquet", args.work / grid / "dictionary.csv"
    train = TrainParams.from_dict({**params["train"], "search_trials": args.trials})
    snapshots = undated_snapshot_features(dictionary, train.allowed_snapshots)
    train = replace(train, exclude_features=(*train.exclude_features, *snapshots))
    frame = read_labelled_rows(features, train.max_training_rows, train.seed)
    started = time.perf_counter()
    searched, _ = fit_recipe(frame, pd.Timestamp(tag), params["features"]["horizon_days"], train, "benchmark",
                             available_features(dictionary))  # fmt: skip
    seconds = time.perf_counter() - started
    full = load_model(args.work / f"{tag}_full" / "backtest")
    rows = labelled(read_cutoff_rows(features, pd.Timestamp(tag))).sort_values("customer_id", ignore_index=True)
    labels = rows[LABEL].to_numpy()
    scores = {"searched": searched.predict_raw(rows), "full": full.predict_raw(rows)}
    probabilities = {"searched": searched.predict(rows), "full": full.predict(rows)}
    metrics = {}
    for name in scores:
        values = score_metrics(labels, scores[name], probabilities[name], 0)
        metrics[name] = {key: round(values[key], 4) for key in REPORTED}
        metrics[name]["mean_predicted"] = round(float(np.mean(probabilities[name])), 4)
    intervals = bootstrap_roc_auc(labels, scores, "searched", 1000, seed=0)
    result = {
        "benchmark": "online_retail_search",
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python benchmarks/online_retail_search.py --work FOLDER --test-cutoff {tag} "
        f"--trials {args.trials}",
        "machine": machine_info(("lightgbm", "optuna")),
        "test_cutoff": tag,
        "test_rows": len(rows),
        "search_seconds": round(seconds, 1),
        "search": searched.training["search"],
        "best_iteration": {"searched": searched.training["best_iteration"], "full": full.training["best_iteration"]},
        "test_metrics": metrics,
        "searched_minus_full": round(metrics["searched"]["roc_auc"] - metrics["full"]["roc_auc"], 4),
        "searched_minus_full_95": intervals["gain_over"]["full"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("test_metrics", "searched_minus_full", "searched_minus_full_95",
                                                    "search_seconds")}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
