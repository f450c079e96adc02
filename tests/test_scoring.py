"""Batch scoring on a small synthetic shop: no train/score skew, the risk list and its reasons, filters, the
all-or-nothing write and every refusal leaving the previous list untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import invoke, write_params
from typer.testing import CliRunner

from features.build import FEATURE_SPECS
from features.cutoffs import FeatureParams
from features.inputs import read_validated
from models.artifact import load_model
from models.explain import NOT_REASONS, describe, top_reasons
from models.risk import ActionRule, suggested_actions
from pipelines.cli import app
from pipelines.stages.score import inputs_like_training, scoring_features

FEATURES = {"first_cutoff": "2024-07-01", "every_days": 60}


@pytest.fixture(scope="module")
def pipeline(shop: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """features + train on the shared small shop."""
    root = tmp_path_factory.mktemp("scoring")
    paths = {**shop, "params": write_params(root / "params.yaml", features=FEATURES, train={"num_threads": 1})}
    paths.update({name: root / name for name in ("features.parquet", "dictionary.csv", "backtest", "current")})
    invoke(
        "features", "--params", paths["params"], "--validated", shop["validated"],
        "--validation-report", shop["report"], "--out", paths["features.parquet"],
        "--dictionary", paths["dictionary.csv"], "--dictionary-md", root / "d.md", "--summary", root / "f.json",
    )  # fmt: skip
    invoke(
        "train", "--params", paths["params"], "--features", paths["features.parquet"],
        "--dictionary", paths["dictionary.csv"], "--validation-report", shop["report"],
        "--backtest", paths["backtest"], "--current", paths["current"],
    )  # fmt: skip
    return paths


def score_args(pipeline: dict[str, Path], out: Path, *extra: object) -> list[str]:
    args = [
        "score", "--params", pipeline["params"], "--model", pipeline["current"], "--validated", pipeline["validated"],
        "--validation-report", pipeline["report"], "--out", out / "risk.parquet", "--out-csv", out / "risk.csv",
        "--report", out / "scoring.json", "--report-md", out / "scoring.md", *extra,
    ]  # fmt: skip
    return [str(arg) for arg in args]


def score(pipeline: dict[str, Path], out: Path, *extra: object) -> pd.DataFrame:
    result = CliRunner().invoke(app, score_args(pipeline, out, *extra))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return pd.read_parquet(out / "risk.parquet")


def refused(
    pipeline: dict[str, Path], out: Path, *extra: object, model: Path | None = None, validated: Path | None = None
) -> str:
    """The output of a `churn score` that must refuse (exit code 1)."""
    args = score_args(pipeline, out, *extra)
    for option, value in (("--model", model), ("--validated", validated)):
        if value is not None:
            args[args.index(option) + 1] = str(value)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def scored(pipeline: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("risk")
    return score(pipeline, out), out


def test_scoring_builds_the_same_features_as_training(pipeline: dict[str, Path]) -> None:
    table = pd.read_parquet(pipeline["features.parquet"])
    cutoff = pd.Timestamp(sorted(table["cutoff"].unique())[-2])
    model = load_model(pipeline["current"])
    exported = pd.Timestamp(json.loads(pipeline["report"].read_text())["as_of"])
    inputs = inputs_like_training(read_validated(ibis.duckdb.connect(), pipeline["validated"], exported), model)
    at_scoring = scoring_features(inputs, cutoff, FeatureParams.from_dict(FEATURES))
    at_training = table[table["cutoff"] == cutoff].set_index("customer_id").loc[at_scoring.index]
    names = [spec.name for spec in FEATURE_SPECS]
    pd.testing.assert_frame_equal(at_scoring[names], at_training[names], check_dtype=False)
    assert np.array_equal(model.predict(at_scoring), model.predict(at_training))


def test_risk_list_is_ranked_by_value_at_risk_with_every_column(scored: tuple[pd.DataFrame, Path]) -> None:
    risk, out = scored
    assert risk["rank"].tolist() == list(range(1, len(risk) + 1))
    assert risk["value_at_risk"].is_monotonic_decreasing
    assert risk["customer_id"].is_unique
    assert np.allclose(risk["value_at_risk"], risk["churn_probability"] * risk["expected_future_value"])
    assert set(risk["risk_tier"]) <= {"low", "medium", "high"}
    assert (risk.loc[risk["churn_probability"] >= 0.7, "risk_tier"] == "high").all()
    assert risk["reason_1"].notna().all()
    assert set(risk["suggested_action"]) <= {"service_recovery", "win_back_offer", "loyalty_invitation", "monitor"}
    recovery = risk[risk["suggested_action"] == "service_recovery"]
    assert (recovery["last_bad_experience_days_ago"] <= 30).all() and (recovery["churn_probability"] >= 0.3).all()
    csv = pd.read_csv(out / "risk.csv")
    assert csv["customer_id"].tolist() == risk["customer_id"].tolist()
    report = json.loads((out / "scoring.json").read_text())
    assert sum(tier["customers"] for tier in report["tiers"].values()) == report["customers_scored"] == len(risk)
    assert "cutoff_month" not in report["psi"]
    assert "## Drift against the training data" in (out / "scoring.md").read_text()


def test_reasons_are_the_largest_shap_contributions(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path]
) -> None:
    risk, _ = scored
    model = load_model(pipeline["current"])
    as_of = pd.Timestamp(json.loads((scored[1] / "scoring.json").read_text())["as_of"])
    exported = pd.Timestamp(json.loads(pipeline["report"].read_text())["as_of"])
    inputs = inputs_like_training(read_validated(ibis.duckdb.connect(), pipeline["validated"], exported), model)
    features = scoring_features(inputs, as_of, FeatureParams.from_dict(FEATURES)).loc[risk["customer_id"].head(50)]
    contributions = model.contributions(features).drop(columns=["bias", *NOT_REASONS])
    for customer, row in risk.head(50).set_index("customer_id").iterrows():
        largest = contributions.loc[customer].sort_values(ascending=False)
        top = largest[largest > 0].index[:3]
        kind = row["last_bad_experience"] if isinstance(row["last_bad_experience"], str) else None
        expected = [describe(name, features.loc[customer, name], kind) for name in top]
        assert [row[f"reason_{i + 1}"] for i in range(len(top))] == expected, customer


def test_reasons_read_well_on_real_data_values() -> None:
    assert describe("orders_365d", 1.0) == "1 order in the last year"
    assert describe("orders_365d", 3.0) == "3 orders in the last year"
    assert describe("overdue_ratio", 2.5) == "no order for 2.5x the usual gap"
    # Several invoices minutes apart make the usual gap tiny (UCI Online Retail).
    assert describe("overdue_ratio", 47754.0) == "no order for over 10x the usual gap"
    assert describe("gap_mean_days", None) == "only one order so far"
    assert describe("review_score_last", float("nan")) == "review score last unknown"


def test_unknown_loyalty_membership_meets_no_loyalty_condition() -> None:
    risk = pd.DataFrame({"churn_probability": [0.5, 0.5, 0.5], "loyalty_member": [True, False, None]})
    rules = (ActionRule("invite", {"loyalty_member": False}), ActionRule("thank", {"loyalty_member": True}))
    assert suggested_actions(risk, rules).tolist() == ["thank", "invite", "monitor"]


def test_top_reasons_skip_features_that_lower_the_risk() -> None:
    contributions = pd.DataFrame(
        {"a": [0.5, -0.1], "b": [0.2, -0.3], "c": [-0.4, 0.6], "cutoff_month": [0.9, 0.9], "bias": [1.0, 1.0]}
    )
    reasons = top_reasons(contributions)
    assert reasons.iloc[0].tolist() == ["a", "b", None]
    assert reasons.iloc[1].tolist() == ["c", None, None]


def test_bad_experience_filter_and_top_k(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    everyone, _ = scored
    recent = score(pipeline, tmp_path / "recent", "--bad-experience-within", 30)
    expected = everyone[everyone["last_bad_experience_days_ago"] <= 30]
    assert 0 < len(recent) < len(everyone)
    assert recent["customer_id"].tolist() == expected["customer_id"].tolist()
    top = score(pipeline, tmp_path / "top", "--top-k", 10, "--min-probability", 0.5)
    kept = everyone[everyone["churn_probability"] >= 0.5].head(10)
    assert top["customer_id"].tolist() == kept["customer_id"].tolist()


@pytest.fixture
def previous(pipeline: dict[str, Path], tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder holding a good risk list, and its files' bytes."""
    out = tmp_path / "risk"
    score(pipeline, out)
    return out, {path.name: path.read_bytes() for path in out.iterdir()}


def unchanged(out: Path, before: dict[str, bytes]) -> bool:
    return {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_a_failure_while_writing_leaves_the_old_list(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, before = previous

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)  # the Parquet file is written first, then this fails
    result = CliRunner().invoke(app, score_args(pipeline, out, "--top-k", 5))
    assert isinstance(result.exception, OSError)
    assert unchanged(out, before)  # no partial or mixed list, no temporary file left


def test_refuses_as_of_after_the_data_end(pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]]) -> None:
    out, before = previous
    assert "after the data's end" in refused(pipeline, out, "--as-of", "2026-02-01")
    assert unchanged(out, before)


def test_refuses_as_of_before_the_training_period(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]]
) -> None:
    out, before = previous
    assert "before the model's training period" in refused(pipeline, out, "--as-of", "2024-01-01")
    assert unchanged(out, before)


def test_refuses_a_model_that_fails_its_metadata_check(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    out, before = previous
    broken = tmp_path / "model"
    shutil.copytree(pipeline["current"], broken)
    (broken / "model.txt").write_text((broken / "model.txt").read_text().replace("tree", "TREE", 1))
    assert "does not match the SHA-256" in refused(pipeline, out, model=broken)
    assert unchanged(out, before)


def test_refuses_data_without_a_source_the_model_was_trained_with(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    out, before = previous
    validated = tmp_path / "validated"
    shutil.copytree(pipeline["validated"], validated)
    (validated / "reviews.parquet").unlink()
    output = refused(pipeline, out, validated=validated)
    assert "model and feature schema mismatch" in output and "reviews" in output
    assert unchanged(out, before)


def test_refuses_an_empty_population(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    out, before = previous
    validated = tmp_path / "validated"
    shutil.copytree(pipeline["validated"], validated)
    orders = pd.read_parquet(validated / "orders.parquet")
    orders[orders["ordered_at"] < pd.Timestamp("2024-06-01")].to_parquet(validated / "orders.parquet", index=False)
    assert "empty population" in refused(pipeline, out, "--as-of", "2025-12-01", validated=validated)
    assert unchanged(out, before)


def test_scores_from_an_mlflow_model_uri_like_from_the_folder(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.tracking import TrackingSettings, log_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = load_model(pipeline["current"])
    rows = pd.read_parquet(pipeline["features.parquet"]).head(3)
    settings = TrackingSettings(experiment="scoring", model_name="churn-scoring")
    log_run(settings, model, pipeline["current"], rows, {}, {"test_roc_auc": 0.8}, {}, [])
    args = score_args(pipeline, tmp_path / "risk")
    args[args.index("--model") + 1] = "models:/churn-scoring@champion"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    from_registry = pd.read_parquet(tmp_path / "risk" / "risk.parquet")
    pd.testing.assert_frame_equal(from_registry, scored[0])


def relabelled(validated: Path, out: Path) -> Path:
    """The validated tables of another shop: the same rows, other customers."""
    out.mkdir()
    for path in validated.glob("*.parquet"):
        table = pd.read_parquet(path)
        if "customer_id" in table:
            table["customer_id"] = "other-" + table["customer_id"].astype(str)
        table.to_parquet(out / path.name, index=False)
    return out


def test_refuses_a_model_trained_on_another_shop_s_customers(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    out, before = previous
    message = refused(pipeline, out, validated=relabelled(pipeline["validated"], tmp_path / "other")).strip()
    assert len(message.splitlines()) == 1
    assert message.startswith("scoring refused: the model was trained on other data (files data at ")
    assert "only 0% of a sample of its customers are in the data" in message
    assert unchanged(out, before)


def test_refuses_a_model_trained_on_another_kind_of_source(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    out, before = previous
    params = yaml.safe_load(pipeline["params"].read_text())
    params["data"] = {**params["data"], "source": "online_retail", "path": "/srv/exports/online-retail"}
    other_params = tmp_path / "params.yaml"
    other_params.write_text(yaml.safe_dump(params))
    args = score_args(pipeline, out)
    args[args.index("--params") + 1] = str(other_params)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"scoring refused: the model was trained on files data at {params_data_path(pipeline)}, not on online_retail "
        "data at /srv/exports/online-retail (or --force to score anyway)"
    )
    assert unchanged(out, before)


def params_data_path(pipeline: dict[str, Path]) -> str:
    return str(yaml.safe_load(pipeline["params"].read_text())["data"]["path"])


def test_refuses_a_model_older_than_max_model_age_days(
    pipeline: dict[str, Path], previous: tuple[Path, dict[str, bytes]]
) -> None:
    """The backtest model was deployed at the test cutoff, 2025-08-25: 129 days before the data's end."""
    out, before = previous
    output = refused(pipeline, out, model=pipeline["backtest"])
    assert output.strip() == (
        "scoring refused: the model is 129 days old at as-of 2026-01-01 00:00:00 (deployed at 2025-08-25 00:00:00; "
        "score.max_model_age_days = 90): retrain it (or --force to score anyway)"
    )
    assert unchanged(out, before)


def test_force_scores_with_a_stale_model_and_the_report_says_so(pipeline: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*score_args(pipeline, tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    args = score_args(pipeline, tmp_path / "forced", "--force")
    args[args.index("--model") + 1] = str(pipeline["backtest"])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scored with --force although the model is 129 days old" in result.output
    report = json.loads((tmp_path / "forced" / "scoring.json").read_text())
    assert report["model"]["forced_past"][0].startswith("the model is 129 days old")
    assert (
        "**Scored with --force although** the model is 129 days old" in (tmp_path / "forced" / "scoring.md").read_text()
    )
    fresh = json.loads((tmp_path / "scoring.json").read_text())
    assert fresh["model"]["forced_past"] == []
