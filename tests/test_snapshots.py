"""Export-time snapshots: the feature dictionary marks a feature the source can give only undated, and the model
leaves it out unless `train.allowed_snapshots` names it (default: only the order status)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import AS_OF, REPO, clean_tables, invoke, write_params

from features.build import feature_dictionary
from features.inputs import inputs_from_frames
from models.artifact import load_model
from models.train import TrainParams
from pipelines.stages.train import undated_snapshot_features


def snapshots(frames: dict[str, pd.DataFrame]) -> pd.Series:
    return feature_dictionary(inputs_from_frames(frames, AS_OF)).set_index("name")["snapshot"]


def test_the_dictionary_marks_what_the_source_gives_undated() -> None:
    undated = snapshots(clean_tables())  # a status without cancelled_at, the customers' flag and country
    assert undated["orders_total"] == undated["late_delivery_total"] == "orders.status"
    assert undated["loyalty_member"] == "customers.loyalty_member" and undated["country"] == "customers.country"
    assert undated["days_since_first_order"] == undated["review_score_mean"] == undated["tenure_days"] == ""


def test_the_times_that_date_them_make_them_point_in_time() -> None:
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(cancelled_at=[pd.NaT, pd.NaT, pd.Timestamp("2024-02-11"), pd.NaT],
                                               country=["SE", "SE", "NO", "NO"])  # fmt: skip
    frames["customers"] = frames["customers"].assign(loyalty_joined_at=[pd.Timestamp("2024-01-01"), pd.NaT])
    assert (snapshots(frames) == "").all()


def test_an_export_without_statuses_has_no_status_snapshot() -> None:
    frames = clean_tables()
    frames["orders"] = frames["orders"].drop(columns=["status", "cancel_reason"])
    assert snapshots(frames)["orders_total"] == ""


def test_the_careful_default_allows_only_the_order_status(tmp_path: Path) -> None:
    assert TrainParams().allowed_snapshots == ("orders.status",)
    assert yaml.safe_load((REPO / "params.yaml").read_text())["train"]["allowed_snapshots"] == ["orders.status"]
    path = tmp_path / "dictionary.csv"
    feature_dictionary(inputs_from_frames(clean_tables(), AS_OF)).to_csv(path, index=False)
    assert undated_snapshot_features(path, TrainParams().allowed_snapshots) == ("loyalty_member", "country")
    everything = undated_snapshot_features(path, ())
    assert {"orders_total", "retailer_cancellation_total", "loyalty_member"} <= set(everything)
    assert "review_score_mean" not in everything


@pytest.mark.parametrize(
    ("allowed", "uses_loyalty"), [(["orders.status"], False), (["orders.status", "customers.loyalty_member"], True)]
)
def test_the_model_leaves_out_an_undated_loyalty_flag_unless_allowed(
    shop: dict[str, Path], tmp_path: Path, allowed: list[str], uses_loyalty: bool
) -> None:
    validated = tmp_path / "validated"
    validated.mkdir()
    for path in shop["validated"].glob("*.parquet"):
        table = pd.read_parquet(path)
        table.drop(columns=["loyalty_joined_at", "loyalty_left_at"], errors="ignore").to_parquet(validated / path.name)
    params = write_params(
        tmp_path / "params.yaml",
        features={"first_cutoff": "2024-07-01", "every_days": 90},
        train={"num_threads": 1, "allowed_snapshots": allowed},
    )
    invoke(
        "features", "--params", params, "--validated", validated, "--validation-report", shop["report"],
        "--out", tmp_path / "f.parquet", "--dictionary", tmp_path / "d.csv", "--dictionary-md", tmp_path / "d.md",
        "--summary", tmp_path / "f.json",
    )  # fmt: skip
    assert "| `loyalty_member` |" in (tmp_path / "d.md").read_text()
    assert "yes, **export-time snapshot** of customers.loyalty_member" in (tmp_path / "d.md").read_text()
    invoke(
        "train", "--params", params, "--features", tmp_path / "f.parquet", "--dictionary", tmp_path / "d.csv",
        "--validation-report", shop["report"], "--backtest", tmp_path / "backtest", "--current", tmp_path / "current",
    )  # fmt: skip
    features = load_model(tmp_path / "current").model_input.features
    assert ("loyalty_member" in features) == uses_loyalty
    assert "orders_total" in features and "country" in features  # dated by orders.country
