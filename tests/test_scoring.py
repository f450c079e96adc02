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
from conftest import REPO, invoke, write_params
from typer.testing import CliRunner

from features.build import FEATURE_SPECS
from features.cutoffs import FeatureParams
from features.inputs import read_validated
from models.artifact import load_model
from models.explain import REASON_WHEN, describe, reason_contributions, reason_texts, top_reasons
from models.risk import ActionRule, RiskParams, for_people, suggested_actions
from pipelines.cli import app
from pipelines.params import load_params
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
    # The same dtypes too: scoring reads its rows through Arrow, as the features stage writes them.
    pd.testing.assert_frame_equal(at_scoring[names], at_training[names])
    assert np.array_equal(model.predict(at_scoring), model.predict(at_training))


def test_risk_list_is_ranked_by_value_at_risk_with_every_column(scored: tuple[pd.DataFrame, Path]) -> None:
    risk, out = scored
    assert risk["rank"].tolist() == list(range(1, len(risk) + 1))
    assert risk["value_at_risk"].is_monotonic_decreasing
    assert risk["customer_id"].is_unique
    assert np.allclose(risk["value_at_risk"], risk["churn_probability"] * risk["expected_future_value"])
    assert set(risk["risk_tier"]) <= {"low", "medium", "high"}
    assert (risk.loc[risk["churn_probability"] >= 0.7, "risk_tier"] == "high").all()
    actions = {"service_recovery", "welcome_back", "win_back_offer", "loyalty_invitation", "monitor"}
    assert set(risk["suggested_action"]) <= actions
    assert (risk.loc[risk["open_tickets"] > 0, "suggested_action"] == "service_recovery").all()
    first_went_wrong = (risk["orders_total"] <= 1) & risk["last_order_went_wrong"] & (risk["open_tickets"] == 0)
    assert first_went_wrong.any()
    assert (risk.loc[first_went_wrong, "suggested_action"] != "monitor").all()
    csv = pd.read_csv(out / "risk.csv")
    assert csv["customer_id"].tolist() == risk["customer_id"].tolist()
    assert {"overdue_ratio", "last_bad_experience_recovered", "last_order_went_wrong"} <= set(csv.columns)
    report = json.loads((out / "scoring.json").read_text())
    assert sum(tier["customers"] for tier in report["tiers"].values()) == report["customers_scored"] == len(risk)
    assert "cutoff_month" not in report["psi"]
    assert list(report["tiers"]) == ["high", "medium", "low"]
    assert sum(action["customers"] for action in report["actions"].values()) == len(risk)
    assert [row["customer_id"] for row in report["top_customers"]] == risk["customer_id"].head(20).tolist()
    markdown = (out / "scoring.md").read_text()
    assert markdown.index("| risk tier |") < markdown.index("| suggested action") < markdown.index("## The top 20")
    assert f"| 1 | {risk['customer_id'].iloc[0]} |" in markdown
    # Only the drifted features are listed, not every feature's PSI.
    assert markdown.count("| `") == len(report["drift_warnings"])


def test_reasons_are_the_largest_shap_contributions(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path]
) -> None:
    risk, _ = scored
    model = load_model(pipeline["current"])
    as_of = pd.Timestamp(json.loads((scored[1] / "scoring.json").read_text())["as_of"])
    exported = pd.Timestamp(json.loads(pipeline["report"].read_text())["as_of"])
    inputs = inputs_like_training(read_validated(ibis.duckdb.connect(), pipeline["validated"], exported), model)
    features = scoring_features(inputs, as_of, FeatureParams.from_dict(FEATURES)).loc[risk["customer_id"].head(50)]
    contributions = reason_contributions(model.contributions(features).drop(columns="bias"), features)
    for customer, row in risk.head(50).set_index("customer_id").iterrows():
        largest = contributions.loc[customer].sort_values(ascending=False)
        top = largest[largest > 0].index[:3]
        assert features.loc[customer, top].notna().all()
        kind = row["last_bad_experience"] if isinstance(row["last_bad_experience"], str) else None
        expected = [describe(name, features.loc[customer, name], kind) for name in top]
        assert [row[f"reason_{i + 1}"] for i in range(len(top))] == expected, customer


def test_table_shap_gives_pred_contrib_s_values_and_reasons_on_the_default_shop(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path]
) -> None:
    """The reasons come from SHAP values of per-leaf tables (models/treeshap.py): on everyone scored they are
    pred_contrib's to 1e-12, and every customer's reasons are the ones pred_contrib's values give."""
    risk, out = scored
    model = load_model(pipeline["current"])
    assert model.shap_tables is not None
    as_of = pd.Timestamp(json.loads((out / "scoring.json").read_text())["as_of"])
    exported = pd.Timestamp(json.loads(pipeline["report"].read_text())["as_of"])
    inputs = inputs_like_training(read_validated(ibis.duckdb.connect(), pipeline["validated"], exported), model)
    features = scoring_features(inputs, as_of, FeatureParams.from_dict(FEATURES)).loc[risk["customer_id"]]
    tabled = model.contributions(features)
    exact = pd.DataFrame(
        model.booster.predict(model.matrix(features), pred_contrib=True), columns=tabled.columns, index=tabled.index
    )
    assert np.abs(tabled.to_numpy() - exact.to_numpy()).max() < 1e-12
    pd.testing.assert_frame_equal(top_reasons(tabled, features), top_reasons(exact, features))


def test_reasons_read_well_on_real_data_values() -> None:
    assert describe("orders_365d", 1.0) == "1 order in the last year"
    assert describe("orders_365d", 3.0) == "3 orders in the last year"
    assert describe("overdue_ratio", 2.5) == "no order for 2.5x the usual gap"
    # Several invoices minutes apart make the usual gap tiny (UCI Online Retail).
    assert describe("overdue_ratio", 47754.0) == "no order for over 10x the usual gap"
    assert describe("gap_mean_days", None) == "only one order so far"
    assert describe("review_score_last", float("nan")) == "review score last unknown"


def test_a_value_a_last_bit_either_side_of_a_half_reads_the_same() -> None:
    # Spark and DuckDB sum the same order values in another order: the features agree to 1e-9, the words exactly.
    below, above = -14.499999999999998, -14.500000000000002
    assert describe("value_90d_change", below) == describe("value_90d_change", above)
    assert describe("late_days_max_365d", 2.4999999999999996) == describe("late_days_max_365d", 2.5000000000000004)


def test_reasons_never_name_a_missing_value_or_a_plain_fact(scored: tuple[pd.DataFrame, Path]) -> None:
    risk, _ = scored
    texts = pd.concat([risk[f"reason_{i}"] for i in (1, 2, 3)]).dropna()
    assert len(texts) > 0
    plain_facts = r"unknown|so far|\borders? in total|first order|customer for|spent|average order"
    assert not texts.str.contains(plain_facts).any()
    assert not texts.str.contains("went fine|was put right quickly|orders? in the last").any()


def test_reasons_are_risk_raising_facts_about_the_relationship() -> None:
    features = pd.DataFrame(
        {
            "orders_total": [12, 1], "overdue_ratio": [2.0, np.nan], "ticket_resolution_days_mean": [np.nan, 1.0],
            "late_delivery_90d": [1, 0], "review_score_last": [5.0, np.nan], "tickets_open": [0, 0],
            "days_since_first_order": [700.0, 40.0], "last_order_went_wrong": [False, True],
            "orders_90d_change": [1.0, -2.0], "review_score_min": [4.0, 2.0], "gap_mean_days": [30.0, np.nan],
        },
        index=["a", "b"],
    )  # fmt: skip
    # Customer a: the largest is a plain count, then lateness, a missing value, a late delivery, a good review.
    # Customer b: tenure, the first order went wrong, fewer orders than before, a low review, no usual gap.
    contributions = pd.DataFrame(
        {
            "orders_total": [0.9, 0.0], "overdue_ratio": [0.5, 0.0], "ticket_resolution_days_mean": [0.4, 0.0],
            "late_delivery_90d": [0.3, 0.0], "review_score_last": [0.2, 0.0], "tickets_open": [0.1, 0.0],
            "days_since_first_order": [0.0, 0.8], "last_order_went_wrong": [0.0, 0.5],
            "orders_90d_change": [0.0, 0.3], "review_score_min": [0.0, 0.2], "gap_mean_days": [0.0, 0.9],
            "bias": [1.0, 1.0],
        },
        index=["a", "b"],
    )  # fmt: skip
    reasons = top_reasons(contributions, features)
    assert reasons.loc["a"].tolist() == ["overdue_ratio", "late_delivery_90d", None]
    assert reasons.loc["b"].tolist() == ["last_order_went_wrong", "orders_90d_change", "review_score_min"]
    assert "orders_total" not in REASON_WHEN and "days_since_first_order" not in REASON_WHEN


def test_recency_is_one_reason_against_the_usual_gap_or_after_a_single_order() -> None:
    features = pd.DataFrame(
        {"overdue_ratio": [2.0, np.nan, 0.8], "days_since_last_order": [60.0, 120.0, 20.0], "tickets_open": [1, 1, 1]},
        index=["lapsing", "single", "early"],
    )
    # Lapsing: recency in days and the ratio together (0.3 + 0.3) outweigh the open complaint (0.5).
    # Single order: no usual gap, so the days are the reason. Early: not late, whatever the days say.
    contributions = pd.DataFrame(
        {"overdue_ratio": [0.3, 0.0, 0.1], "days_since_last_order": [0.3, 0.6, 0.6], "tickets_open": [0.5, 0.5, 0.5]},
        index=features.index,
    )
    reasons = top_reasons(contributions, features)
    assert reasons.loc["lapsing"].tolist() == ["overdue_ratio", "tickets_open", None]
    assert reasons.loc["single"].tolist() == ["days_since_last_order", "tickets_open", None]
    assert reasons.loc["early"].tolist() == ["tickets_open", None, None]


def test_reason_texts_read_each_customer_s_own_values_whatever_the_row_order() -> None:
    features = pd.DataFrame({"late_delivery_90d": [1, 3], "tickets_open": [2, 0]}, index=["a", "b"])
    reasons = pd.DataFrame({"reason_1_feature": ["late_delivery_90d", "late_delivery_90d"]}, index=["a", "b"])
    aligned = reason_texts(reasons, features)
    assert aligned.equals(reason_texts(reasons, features.loc[["b", "a"]]))
    assert aligned.loc["a", "reason_1"] != aligned.loc["b", "reason_1"]


def default_actions() -> tuple[ActionRule, ...]:
    return RiskParams.from_dict(load_params(REPO / "params.yaml")["score"]).actions


def test_default_actions_on_hand_made_customers() -> None:
    customers = pd.DataFrame(
        [
            # open complaint, low risk, nothing recent: fixed first
            (0.1, np.nan, 1, None, False, 2.0, 5, True),
            # open complaint and lapsing: still service recovery
            (0.9, 200.0, 2, True, False, 3.0, 8, False),
            # an unrecovered bad experience 30.43 days ago is 30 whole days ago
            (0.2, 30.43, 0, False, False, 0.5, 4, True),
            # 31.2 days ago is outside the window: lapsing repeat buyer
            (0.6, 31.2, 0, False, False, 2.0, 6, True),
            # the only order went wrong 5 days ago and was put right: welcome back, not monitor
            (0.95, 5.0, 0, True, True, np.nan, 1, None),
            # one order that went fine
            (0.95, np.nan, 0, None, False, np.nan, 1, None),
            # repeat buyer outside the loyalty programme
            (0.4, np.nan, 0, None, False, 0.8, 3, False),
            # a recent bad experience where the data has no tickets (recovery unknown): not put right
            (0.35, 10.0, 0, None, True, 0.5, 3, True),
        ],
        columns=[
            "churn_probability", "last_bad_experience_days_ago", "open_tickets", "last_bad_experience_recovered",
            "last_order_went_wrong", "overdue_ratio", "orders_total", "loyalty_member",
        ],
    )  # fmt: skip
    assert suggested_actions(customers, default_actions()).tolist() == [
        "service_recovery", "service_recovery", "service_recovery", "win_back_offer", "welcome_back", "monitor",
        "loyalty_invitation", "service_recovery",
    ]  # fmt: skip


def test_csv_is_rounded_for_people_and_parquet_keeps_precision(scored: tuple[pd.DataFrame, Path]) -> None:
    risk, out = scored
    csv = pd.read_csv(out / "risk.csv")
    assert (csv["churn_probability"] == csv["churn_probability"].round(3)).all()
    assert (csv["value_at_risk"] == csv["value_at_risk"].round(2)).all()
    days = csv["last_bad_experience_days_ago"].dropna()
    assert len(days) and (days == days.round()).all()
    assert csv["last_bad_experience_days_ago"].tolist() == pytest.approx(
        np.floor(risk["last_bad_experience_days_ago"]).tolist(), nan_ok=True
    )
    assert (risk["churn_probability"] != risk["churn_probability"].round(3)).any()
    text = (out / "risk.csv").read_text().splitlines()[1]
    assert len(text) < 400, text


def test_for_people_rounds_by_hand() -> None:
    risk = pd.DataFrame(
        {
            "churn_probability": [0.123456], "value_at_risk": [10.005001], "expected_future_value": [81.04999],
            "overdue_ratio": [2.345], "last_bad_experience_days_ago": [30.93], "days_since_first_order": [np.nan],
        }
    )  # fmt: skip
    rounded = for_people(risk).iloc[0]
    assert rounded["churn_probability"] == 0.123 and rounded["value_at_risk"] == 10.01
    assert rounded["expected_future_value"] == 81.05 and rounded["overdue_ratio"] == 2.3
    assert rounded["last_bad_experience_days_ago"] == 30 and pd.isna(rounded["days_since_first_order"])


def test_unknown_loyalty_membership_meets_no_loyalty_condition() -> None:
    risk = pd.DataFrame({"churn_probability": [0.5, 0.5, 0.5], "loyalty_member": [True, False, None]})
    rules = (ActionRule("invite", {"loyalty_member": False}), ActionRule("thank", {"loyalty_member": True}))
    assert suggested_actions(risk, rules).tolist() == ["thank", "invite", "monitor"]


def test_top_reasons_skip_features_that_lower_the_risk() -> None:
    names = ["tickets_open", "complaint_90d", "low_review_90d"]
    contributions = pd.DataFrame(
        {**dict(zip(names, [[0.5, -0.1], [0.2, -0.3], [-0.4, 0.6]], strict=True)), "cutoff_month": [0.9, 0.9]}
    )
    features = pd.DataFrame({name: [1, 1] for name in names} | {"cutoff_month": [9, 9]})
    reasons = top_reasons(contributions, features)
    assert reasons.iloc[0].tolist() == ["tickets_open", "complaint_90d", None]
    assert reasons.iloc[1].tolist() == ["low_review_90d", None, None]


def test_bad_experience_filter_and_top_k(
    pipeline: dict[str, Path], scored: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    everyone, _ = scored
    recent = score(pipeline, tmp_path / "recent", "--bad-experience-within", 30)
    expected = everyone[np.floor(everyone["last_bad_experience_days_ago"]) <= 30]
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
    assert result.exit_code == 1
    assert "No space left on device" in result.output  # one line, no traceback
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
    from models.tracking import Evidence, log_run
    from models.tracking_settings import TrackingSettings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = load_model(pipeline["current"])
    rows = pd.read_parquet(pipeline["features.parquet"]).head(3)
    settings = TrackingSettings(experiment="scoring", model_name="churn-scoring")
    evidence = Evidence(load_model(pipeline["backtest"]), pipeline["backtest"], rows, resamples=0, seed=0)
    log_run(settings, model, pipeline["current"], evidence, {}, {"test_roc_auc": 0.8}, {}, [])
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
