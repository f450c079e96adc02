"""Stage `train`: the backtest model (deployed at the test cutoff T) and the current model (deployed at the data's
as-of time), both by the same recipe."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import TABLES_BY_NAME
from features.cutoffs import FeatureParams
from models.artifact import save_model
from models.dataset import read_labelled_rows
from models.identity import data_identity
from models.split import chosen_test_cutoff
from models.train import TrainParams, data_shortfalls, fit_recipe
from pipelines.params import block, load_params
from pipelines.validation.outcome import read_validation_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutputs:
    backtest: Path
    current: Path


def run(
    params_path: Path, features_path: Path, dictionary: Path, validation_report: Path, outputs: TrainOutputs
) -> dict[str, object]:
    params = load_params(params_path)
    train_params = TrainParams.from_dict(block(params, "train"))
    feature_block = dict(block(params, "features"))
    feature_block.pop("strategy", None)
    horizon_days = FeatureParams.from_dict(feature_block).horizon_days
    report = read_validation_report(validation_report)
    as_of = pd.Timestamp(report["as_of"])
    frame = read_labelled_rows(features_path, train_params.max_training_rows, train_params.seed)
    data_hash = file_sha256(features_path)
    data = block(params, "data")
    trained_on = data_identity(
        data.get("source", "files"), data.get("path"), present_columns(report), frame["customer_id"].unique(),
        frame["cutoff"], as_of,
    )  # fmt: skip
    available = available_features(dictionary)
    left_out = undated_snapshot_features(dictionary, train_params.allowed_snapshots)
    if left_out:
        log.info("left out as export-time snapshots (train.allowed_snapshots): %s", ", ".join(left_out))
        train_params = replace(train_params, exclude_features=(*train_params.exclude_features, *left_out))
    test_cutoff = chosen_test_cutoff(frame, train_params.test_cutoff)
    data_warning = too_little_data(frame, test_cutoff, horizon_days, train_params)
    summary: dict[str, object] = {
        "test_cutoff": test_cutoff.date().isoformat(),
        "as_of": as_of.isoformat(),
        "data_warning": data_warning,
    }
    for name, deploy_at, folder in (("backtest", test_cutoff, outputs.backtest), ("current", as_of, outputs.current)):
        model, _ = fit_recipe(frame, deploy_at, horizon_days, train_params, data_hash, available, data_warning)
        model.training["data"] = trained_on
        save_model(model, folder)
        summary[name] = {
            "deploy_at": deploy_at.isoformat(),
            "best_iteration": model.training["best_iteration"],
            "train_rows": model.training["train_rows"],
            "calibration": model.calibration.method,
        }
        log.info("%s model saved to %s", name, folder)
    return summary


def too_little_data(
    frame: pd.DataFrame, test_cutoff: pd.Timestamp, horizon_days: int, params: TrainParams
) -> str | None:
    """Refuse to train on too little data, or (train.too_little_data: warn) return the warning the model carries."""
    shortfalls = data_shortfalls(frame, test_cutoff, horizon_days, params)
    if not shortfalls:
        return None
    message = "too little data for figures that mean anything: only " + "; ".join(shortfalls)
    if params.too_little_data == "stop":
        raise ValueError(
            f"{message}. Add history or customers, lower those minimums, or set train.too_little_data: warn to "
            "train anyway with a warning on every report and risk list"
        )
    log.warning(message)
    return message


def present_columns(validation_report: dict[str, Any]) -> dict[str, list[str]]:
    """Per contract table the source had, the contract columns it had, from the validation report."""
    present = {}
    for name, table in validation_report["tables"].items():
        if table["present"]:
            missing = set(table["missing_optional_columns"])
            present[name] = [column for column in TABLES_BY_NAME[name].column_names if column not in missing]
    return present


def undated_snapshot_features(dictionary: Path, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Available features the source gives only as an export-time snapshot that `allowed` does not name."""
    table = pd.read_csv(dictionary, dtype={"snapshot": "string"})
    snapshots = table["snapshot"].fillna("").str.split(", ")
    undated = [
        name
        for name, available, reads in zip(table["name"], table["available"], snapshots, strict=True)
        if available and any(snapshot and snapshot not in allowed for snapshot in reads)
    ]
    return tuple(undated)


def available_features(dictionary: Path) -> tuple[str, ...]:
    """Features whose source the data provided, from the feature dictionary the features stage wrote."""
    table = pd.read_csv(dictionary)
    return tuple(table.loc[table["available"], "name"])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
