"""Train settings compared on one prepared feature table: fit time (wall and CPU), rounds, test ROC-AUC and the cost
of exact SHAP values, per setting, in one process on the same rows (issue 16).

Each setting is a JSON object of `train` params (e.g. {"learning_rate": 0.1}) plus optional "lightgbm" (booster
params laid over the recipe's, e.g. {"force_row_wise": true} for the former histogram layout) and a "name". The rows
are read once with the largest `max_training_rows` asked for; a setting with a smaller one keeps the customers the
stage's own sample would keep (the same hash, a lower share). The backtest model is fitted at the last labelled
cutoff, as `churn train` does, and scored on every labelled customer there, as `churn evaluate` does (raw scores:
the calibration does not reorder customers).

    .venv/bin/python benchmarks/train_settings.py --features-dir /tmp/churn-1m \
        --settings '[{"name": "new"}, {"name": "old", "learning_rate": 0.05, "early_stopping_rounds": 50}]'
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pyarrow as pa
import pyarrow.parquet as pq
from generate_validate import REPO
from sklearn.metrics import roc_auc_score

# The repository's features/ package, not benchmarks/features.py next to this script.
sys.path.insert(0, str(REPO))
from features.build import LABEL
from models.dataset import (
    _customer_share,
    _labelled_count,
    model_input_from,
    read_cutoff_rows,
    read_labelled_rows,
    to_matrix,
)
from models.split import chosen_test_cutoff, split_for_deployment
from models.train import TrainParams, lightgbm_params
from pipelines.stages.train import undated_snapshot_features

SHAP_ROWS = 20_000
HORIZON_DAYS = 90


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fit(setting: dict[str, Any], base: TrainParams, full: Any, total: int, test: Any) -> dict[str, Any]:
    setting = dict(setting)
    name, overrides = setting.pop("name"), setting.pop("lightgbm", {})
    params = replace(base, **setting)
    frame = full
    if params.max_training_rows is not None and params.max_training_rows < total:
        ids = pa.array(full["customer_id"].astype(str))
        frame = full[_customer_share(ids, params.max_training_rows / total, params.seed)].reset_index(drop=True)
    test_cutoff = chosen_test_cutoff(frame, None)
    split = split_for_deployment(frame, test_cutoff, HORIZON_DAYS, params.validation_share, params.seed)
    train_rows, validation_rows = frame.iloc[split.train], frame.iloc[split.validation]
    model_input = model_input_from(train_rows, params.exclude_features)
    booster_params = {**lightgbm_params(params, model_input.features), **overrides}
    if overrides.get("force_row_wise"):
        booster_params.pop("force_col_wise", None)
    wall, cpu = time.perf_counter(), cpu_seconds()
    train_set = lgb.Dataset(to_matrix(train_rows, model_input), train_rows[LABEL].to_numpy())
    valid_set = lgb.Dataset(
        to_matrix(validation_rows, model_input), validation_rows[LABEL].to_numpy(), reference=train_set
    )
    history: dict[str, Any] = {}
    booster = lgb.train(
        booster_params, train_set, num_boost_round=params.max_rounds, valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False),
                   lgb.record_evaluation(history)],
    )  # fmt: skip
    fit_wall, fit_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    test_matrix = to_matrix(test, model_input)
    best = booster.best_iteration or booster.current_iteration()
    auc = roc_auc_score(test[LABEL].astype(int).to_numpy(), booster.predict(test_matrix, num_iteration=best))
    wall, cpu = time.perf_counter(), cpu_seconds()
    booster.predict(test_matrix.iloc[:SHAP_ROWS], num_iteration=best, pred_contrib=True)
    return {
        "name": name,
        "setting": {**setting, "lightgbm": overrides},
        "train_rows": len(train_rows),
        "fit_wall_s": round(fit_wall, 1),
        "fit_cpu_s": round(fit_cpu, 1),
        "rounds": booster.current_iteration(),
        "best_iteration": best,
        "test_roc_auc": round(float(auc), 5),
        "validation_log_loss": round(min(history["validation"]["binary_logloss"]), 5),
        f"shap_{SHAP_ROWS}_wall_s": round(time.perf_counter() - wall, 2),
        f"shap_{SHAP_ROWS}_cpu_s": round(cpu_seconds() - cpu, 2),
        "load_1min_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features-dir", type=Path, required=True, help="holds features.parquet, dictionary.csv")
    parser.add_argument("--settings", required=True, help="a JSON list of settings")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_settings.json"))
    args = parser.parse_args()
    settings = json.loads(args.settings)
    base = TrainParams()
    base = replace(
        base, exclude_features=undated_snapshot_features(args.features_dir / "dictionary.csv", base.allowed_snapshots)
    )
    path = args.features_dir / "features.parquet"
    caps = [s.get("max_training_rows", base.max_training_rows) for s in settings]
    largest = None if None in caps else max(caps)
    full = read_labelled_rows(path, largest, base.seed)
    test_cutoff = chosen_test_cutoff(full, None)
    test = read_cutoff_rows(path, test_cutoff)
    test = test[test[LABEL].notna()]
    results: dict[str, Any] = {
        "benchmark": "train_settings",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": str(path),
        "test_cutoff": test_cutoff.date().isoformat(),
        "test_customers": len(test),
        "load_1min_before": os.getloadavg()[0],
        "runs": [],
    }
    total = _labelled_count(pq.ParquetFile(path))
    for setting in settings:
        results["runs"].append(fit(setting, base, full, total, test))
        print(json.dumps(results["runs"][-1]), flush=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
