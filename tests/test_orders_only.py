"""A source with nothing but orders works end to end, from an Excel-Nordic export through `churn inspect` to a risk
list, and every report says which feature groups it could feed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import invoke, write_params
from messy_exports import write_nordic_export

FEATURES = {"first_cutoff": "2024-07-01", "every_days": 60}


@pytest.fixture(scope="module")
def orders_only(shop: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small shop's validated orders as the only file of a folder, written as Excel saves a Norwegian export;
    `churn inspect` proposes the data block, and the stages run from validate to score with it."""
    root = tmp_path_factory.mktemp("orders-only")
    (root / "export").mkdir()
    write_nordic_export(pd.read_parquet(shop["validated"] / "orders.parquet"), root / "export" / "ordrer.csv")
    proposed = yaml.safe_load(invoke("inspect", root / "export"))["data"]
    params = write_params(
        root / "params.yaml",
        data=proposed,
        features=FEATURES,
        train={"num_threads": 1},
        evaluate={"oracle": False, "bootstrap_resamples": 200},
    )
    paths = {name: root / name for name in ("validated", "features.parquet", "dictionary.csv", "models", "reports")}
    invoke(
        "validate", "--params", params, "--validated", paths["validated"], "--quarantine", root / "quarantine",
        "--report", root / "validation.json", "--report-md", root / "validation.md",
    )  # fmt: skip
    invoke(
        "features", "--params", params, "--validated", paths["validated"], "--validation-report",
        root / "validation.json", "--out", paths["features.parquet"], "--dictionary", paths["dictionary.csv"],
        "--dictionary-md", root / "dictionary.md", "--summary", root / "features.json",
    )  # fmt: skip
    models = paths["models"]
    invoke(
        "train", "--params", params, "--features", paths["features.parquet"], "--dictionary",
        paths["dictionary.csv"], "--validation-report", root / "validation.json",
        "--backtest", models / "backtest", "--current", models / "current",
    )  # fmt: skip
    invoke(
        "evaluate", "--params", params, "--features", paths["features.parquet"], "--backtest", models / "backtest",
        "--current", models / "current", "--truth", root / "no-truth", "--metrics", root / "metrics.json",
        "--evaluation", root / "evaluation.json",
        "--plots", root / "plots", "--figures", root / "figures", "--no-track",
    )  # fmt: skip
    invoke(
        "score", "--params", params, "--model", models / "current", "--validated", paths["validated"],
        "--validation-report", root / "validation.json", "--out", root / "risk.parquet", "--out-csv",
        root / "risk.csv", "--report", root / "scoring.json", "--report-md", root / "scoring.md",
    )  # fmt: skip
    return {**paths, "root": root}


def test_inspect_reads_the_nordic_export_as_the_shop_had_it(
    orders_only: dict[str, Path], shop: dict[str, Path]
) -> None:
    original = pd.read_parquet(shop["validated"] / "orders.parquet").set_index("order_id").sort_index()
    read = pd.read_parquet(orders_only["validated"] / "orders.parquet").set_index("order_id").sort_index()
    assert read.index.equals(original.index)
    assert read["customer_id"].equals(original["customer_id"])
    assert (read["ordered_at"] == original["ordered_at"]).all()
    assert (read["order_value"] - original["order_value"]).abs().max() < 0.005  # the export rounds to cents
    report = json.loads((orders_only["root"] / "validation.json").read_text())["tables"]["orders"]
    assert report["quarantined"] == 0


def test_reports_name_the_feature_groups_the_data_could_feed(orders_only: dict[str, Path]) -> None:
    root = orders_only["root"]
    validation = json.loads((root / "validation.json").read_text())
    assert {name for name, table in validation["tables"].items() if table["present"]} == {"orders"}
    groups = json.loads((root / "features.json").read_text())["feature_groups"]
    assert groups["returns"]["available"] == []
    assert {"review_score_mean", "complaint_total", "tickets_open"} <= set(groups["satisfaction"]["missing"])
    # Orders alone still tell lateness and the shop's cancellations.
    assert {"late_delivery_total", "retailer_cancellation_total"} <= set(groups["satisfaction"]["available"])
    assert "loyalty_member" in groups["relationship"]["missing"]
    used = json.loads((root / "evaluation.json").read_text())["features_per_group"]
    assert used["returns"] == 0 and used["rfm"] == len(groups["rfm"]["available"])


def test_the_model_trains_and_scores_without_satisfaction_tables(orders_only: dict[str, Path]) -> None:
    root = orders_only["root"]
    metrics = json.loads((root / "evaluation.json").read_text())
    auc = metrics["overall"]["lightgbm"]["roc_auc"]
    low, high = metrics["bootstrap"]["roc_auc"]["lightgbm"]
    assert auc > 0.6 and low < auc < high
    features = pd.read_parquet(orders_only["features.parquet"])
    assert features["review_score_mean"].isna().all() and features["returns_total"].isna().all()
    risk = pd.read_parquet(root / "risk.parquet")
    assert len(risk) > 0 and risk["churn_probability"].between(0, 1).all()
