"""Model building blocks on tiny hand-worked inputs: metrics, the out-of-time split guard, calibration, the model
input and the saved artifact."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from features.build import FEATURE_SPECS
from models.artifact import ChurnModel, ModelFileError, load_model, save_model
from models.baselines import Scores
from models.calibration import Calibration, choose_calibration, fit_calibration
from models.dataset import ModelInput, model_input_from, plain_input, to_matrix
from models.evaluate import evaluate_methods, joined_evaluations
from models.metrics import (
    calibration_table,
    cumulative_gains,
    expected_calibration_error,
    lift_and_capture,
    precision_recall_at_k,
    score_metrics,
)
from models.split import Split, check_split, held_out_customers, last_labelled_cutoff, split_for_deployment
from models.train import TrainParams

LABELS = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1])


def test_metrics_agree_with_scikit_learn() -> None:
    metrics = score_metrics(LABELS, SCORES, SCORES, contact_k=3)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(LABELS, SCORES))
    assert metrics["brier"] == pytest.approx(brier_score_loss(LABELS, SCORES))
    assert metrics["log_loss"] == pytest.approx(log_loss(LABELS, SCORES))
    assert metrics["churn_rate"] == pytest.approx(0.4)


def test_score_metrics_sorted_once_are_the_per_metric_sorts() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(rng.normal(0, 1, 2000) + labels, 1)  # many ties: the stable order decides the top k
    metrics = score_metrics(labels, scores, None, 137)
    for share in (0.05, 0.10, 0.20):
        lift, capture = lift_and_capture(labels, scores, share)
        assert (metrics[f"lift_top_{round(share * 100)}pct"], metrics[f"capture_top_{round(share * 100)}pct"]) == (
            lift,
            capture,
        )
    assert (metrics["precision_at_k"], metrics["recall_at_k"]) == precision_recall_at_k(labels, scores, 137)


def test_methods_evaluated_in_two_parts_and_joined_are_all_evaluated_at_once() -> None:
    rng = np.random.default_rng(9)
    rows = pd.DataFrame(
        {
            "churned": rng.integers(0, 2, 300),
            "orders_total": rng.integers(0, 4, 300),
            "bad_experiences_90d": np.where(rng.random(300) < 0.3, 1.0, np.nan),
        }
    )
    methods = {
        name: Scores(ranking=values, probability=None if name == "ranked" else 1 / (1 + np.exp(-values)))
        for name, values in (("a", rng.normal(size=300)), ("ranked", rng.normal(size=300)), ("c", rng.normal(size=300)))
    }
    at_once = evaluate_methods(rows, methods, 20)
    first = evaluate_methods(rows, {"a": methods["a"], "ranked": methods["ranked"]}, 20)
    joined = joined_evaluations(first, evaluate_methods(rows, {"c": methods["c"]}, 20))
    # The same values in the same order (the JSON written from it is the same text).
    assert json.dumps(joined) == json.dumps(at_once)
    assert list(joined["cohorts"]["repeat_buyer"]) == ["a", "ranked", "c"]


def test_lift_capture_and_precision_at_k_by_hand() -> None:
    # Top 20 % = the two highest scores: one churner of two (rate 0.5, lift 0.5 / 0.4), one of four churners.
    assert lift_and_capture(LABELS, SCORES, 0.2) == pytest.approx((1.25, 0.25))
    # The top 4 hold three churners: precision 3/4, recall 3/4.
    assert precision_recall_at_k(LABELS, SCORES, 4) == pytest.approx((0.75, 0.75))
    # k larger than the population contacts everyone.
    assert precision_recall_at_k(LABELS, SCORES, 50) == pytest.approx((0.4, 1.0))


def test_ranking_only_methods_get_no_probability_metrics() -> None:
    metrics = score_metrics(LABELS, SCORES * 100, None, contact_k=3)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert "brier" not in metrics and "ece" not in metrics


def test_expected_calibration_error_by_hand() -> None:
    labels = np.array([0, 1, 1, 1])
    probability = np.array([0.05, 0.05, 0.95, 0.95])
    # Bin [0, .1): predicted .05, observed .5 (2 rows); bin [.9, 1]: predicted .95, observed 1 (2 rows).
    assert expected_calibration_error(labels, probability) == pytest.approx((2 * 0.45 + 2 * 0.05) / 4)
    table = calibration_table(labels, probability)
    assert table["rows"].tolist() == [2, 2]


def test_cumulative_gains_end_points_and_order() -> None:
    gains = cumulative_gains(LABELS, SCORES, points=11)
    assert gains["captured"].iloc[0] == 0.0 and gains["captured"].iloc[-1] == 1.0
    assert gains["captured"].is_monotonic_increasing
    assert gains["captured"].iloc[4] == pytest.approx(0.75)  # top 40 %: three of four churners


def rows(cutoffs: list[str], customers: list[str], labels: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": customers, "cutoff": pd.to_datetime(cutoffs), "churned": pd.array(labels, dtype="Float64")}
    )


def panel() -> pd.DataFrame:
    """40 customers at four cutoffs 30 days apart; the last has no label."""
    cutoffs = ["2024-01-01", "2024-01-31", "2024-03-01", "2024-03-31"]
    customers = [f"c{i:02d}" for i in range(40)]
    frame = rows(
        [c for c in cutoffs for _ in customers],
        customers * len(cutoffs),
        [float(i % 2) for i in range(3 * len(customers))] + [None] * len(customers),
    )
    return frame


def test_split_keeps_every_fitting_label_window_before_the_deployment() -> None:
    frame = panel()
    assert last_labelled_cutoff(frame) == pd.Timestamp("2024-03-01")
    split = split_for_deployment(frame, pd.Timestamp("2024-03-01"), 30, 0.25, seed=1)
    used = frame.iloc[split.fitting]
    # 2024-01-31 + 30 days = 2024-03-01: its window ends exactly at the deployment, so it may be used.
    assert sorted(used["cutoff"].dt.date.astype(str).unique()) == ["2024-01-01", "2024-01-31"]
    train_customers = set(frame["customer_id"].iloc[split.train])
    validation_customers = set(frame["customer_id"].iloc[split.validation])
    assert train_customers and validation_customers and not train_customers & validation_customers


def test_split_guard_rejects_a_label_window_past_the_deployment() -> None:
    frame = panel()
    split = split_for_deployment(frame, pd.Timestamp("2024-03-01"), 30, 0.25, seed=1)
    late_row = int(np.flatnonzero(frame["cutoff"] == pd.Timestamp("2024-03-01"))[0])
    leaky = Split(split.deploy_at, split.horizon_days, np.append(split.train, late_row), split.validation)
    with pytest.raises(ValueError, match="label window ending after the deployment time"):
        check_split(frame, leaky)


def test_split_guard_rejects_a_validation_customer_in_training() -> None:
    frame = panel()
    split = split_for_deployment(frame, pd.Timestamp("2024-03-01"), 30, 0.25, seed=1)
    shared = frame["customer_id"].iloc[split.validation[0]]
    same_customer = np.flatnonzero(
        (frame["customer_id"] == shared).to_numpy() & (frame["cutoff"] == pd.Timestamp("2024-01-01")).to_numpy()
    )
    leaky = Split(split.deploy_at, split.horizon_days, np.append(split.train, same_customer), split.validation)
    with pytest.raises(ValueError, match="validation customers are also in training"):
        check_split(frame, leaky)


def test_split_needs_an_observable_label() -> None:
    with pytest.raises(ValueError, match="no labelled cutoff has a label window ending by"):
        split_for_deployment(panel(), pd.Timestamp("2024-01-15"), 30, 0.25, seed=1)


def test_held_out_customers_are_stable_and_near_the_share() -> None:
    ids = pd.Series([f"c{i}" for i in range(10_000)])
    held = held_out_customers(ids, 0.2, seed=7)
    assert held.mean() == pytest.approx(0.2, abs=0.02)
    assert (held_out_customers(ids[::-1], 0.2, seed=7)[::-1] == held).all()  # per customer, not per position
    with pytest.raises(ValueError, match="validation_share"):
        held_out_customers(ids, 1.0, seed=7)


def test_calibration_reproduces_scikit_learn_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.99, 2000)
    labels = (rng.uniform(size=2000) < raw**2).astype(int)
    isotonic = fit_calibration(raw, labels, "isotonic")
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, labels)
    grid = np.linspace(0.0, 1.0, 101)
    assert np.allclose(isotonic.apply(grid), reference.predict(grid))
    for calibration in (isotonic, fit_calibration(raw, labels, "sigmoid")):
        restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
        assert np.array_equal(restored.apply(grid), calibration.apply(grid))


def test_auto_calibration_compares_both_methods_out_of_fold() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.01, 0.99, 4000)
    labels = (rng.uniform(size=4000) < raw**3).astype(int)  # raw overstates risk; either method corrects it
    halves = rng.uniform(size=4000) < 0.5
    calibration, losses = choose_calibration(raw, labels, halves, "auto")
    assert set(losses) == {"isotonic", "sigmoid"}
    assert calibration.method == min(losses, key=losses.__getitem__)
    assert np.mean(calibration.apply(raw)) == pytest.approx(labels.mean(), abs=0.02)


MODEL_INPUT = ModelInput(features=("days", "flag", "channel"), categories={"channel": ("app", "web")})


def test_model_input_keeps_training_levels_and_makes_unknown_missing() -> None:
    frame = pd.DataFrame(
        {"days": [1, 2, 3], "flag": pd.array([True, None, False], dtype=object), "channel": ["web", "fax", None]}
    )
    matrix = to_matrix(frame, MODEL_INPUT)
    assert list(matrix["channel"].cat.categories) == ["app", "web"]
    assert matrix["channel"].isna().tolist() == [False, True, True]
    assert matrix["flag"].tolist()[0::2] == [1.0, 0.0] and np.isnan(matrix["flag"].iloc[1])
    assert matrix["days"].dtype == np.float32
    plain = plain_input(frame, MODEL_INPUT)
    assert plain["channel"].tolist() == ["web", None, None]
    with pytest.raises(ValueError, match="lacks model features"):
        to_matrix(frame.drop(columns="days"), MODEL_INPUT)


def test_never_having_a_bad_experience_ranks_as_the_least_risky_value() -> None:
    features = ("days_since_first_order", "bad_experiences_total", "days_since_last_bad_experience",
                "last_bad_experience_recovered")  # fmt: skip
    frame = pd.DataFrame(
        {
            "days_since_first_order": [400.0, 400.0, 400.0],
            "bad_experiences_total": [0, 2, None],  # never, twice, source absent
            "days_since_last_bad_experience": [None, 30.0, None],
            "last_bad_experience_recovered": pd.array([None, False, None], dtype=object),
        }
    )
    matrix = to_matrix(frame, ModelInput(features=features))
    assert matrix["days_since_last_bad_experience"].tolist()[:2] == [400.0, 30.0]
    assert matrix["last_bad_experience_recovered"].tolist()[:2] == [1.0, 0.0]
    assert matrix.iloc[2][["days_since_last_bad_experience", "last_bad_experience_recovered"]].isna().all()


def test_no_late_delivery_in_the_year_is_zero_days_late() -> None:
    frame = pd.DataFrame(
        {"late_delivery_365d": [0, 1, None], "late_days_max_365d": [None, 4.5, None]}  # none, one, source absent
    )
    matrix = to_matrix(frame, ModelInput(features=("late_delivery_365d", "late_days_max_365d")))
    assert matrix["late_days_max_365d"].tolist()[:2] == [0.0, 4.5] and pd.isna(matrix["late_days_max_365d"].iloc[2])


def tiny_model() -> ChurnModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"days": rng.uniform(0, 100, 400), "flag": rng.integers(0, 2, 400), "channel": rng.choice(["app", "web"], 400)}
    )
    labels = (frame["days"] > 50).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "deterministic": True, "seed": 1},
        lgb.Dataset(to_matrix(frame, MODEL_INPUT), labels),
        num_boost_round=5,
    )
    return ChurnModel(booster, MODEL_INPUT, Calibration("sigmoid", a=1.0, b=0.0), {"deploy_at": "2024-01-01"})


def test_saved_model_predicts_the_same(tmp_path: Path) -> None:
    model = tiny_model()
    frame = pd.DataFrame({"days": [10.0, 90.0], "flag": [0, 1], "channel": ["web", "app"]})
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.predict(frame), model.predict(frame))
    assert loaded.predict(frame)[1] > loaded.predict(frame)[0]
    contributions = loaded.contributions(frame)
    assert list(contributions.columns) == ["days", "flag", "channel", "bias"]
    assert np.allclose(contributions.sum(axis=1), loaded.booster.predict(loaded.matrix(frame), raw_score=True))


def test_the_calibrated_raw_scores_are_the_prediction() -> None:
    """evaluate predicts once and calibrates the raw scores: the same floats as `predict`."""
    model = tiny_model()
    frame = pd.DataFrame({"days": np.linspace(0, 400, 50), "flag": np.arange(50) % 2, "channel": ["web", "app"] * 25})
    assert np.array_equal(model.calibration.apply(model.predict_raw(frame)), model.predict(frame))


def test_a_model_that_fails_its_metadata_check_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_model(tiny_model(), folder)
    text = (folder / "model.txt").read_text()
    (folder / "model.txt").write_text(text.replace("num_leaves=31", "num_leaves=30", 1) + "\n")
    with pytest.raises(ModelFileError, match="does not match the SHA-256"):
        load_model(folder)
    (folder / "metadata.json").unlink()
    with pytest.raises(ModelFileError, match=r"metadata\.json is missing"):
        load_model(folder)


def test_a_metadata_file_of_another_format_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_model(tiny_model(), folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(ModelFileError, match="format_version 99"):
        load_model(folder)


def feature_file(path: Path, customers: int, cutoffs: list[str]) -> Path:
    """A feature table with every model column: one row per customer and cutoff; the last cutoff is unlabelled."""
    from features.build import FEATURE_SPECS

    rows = pd.DataFrame(
        [(f"c{i:03d}", pd.Timestamp(cutoff)) for cutoff in cutoffs for i in range(customers)],
        columns=["customer_id", "cutoff"],
    )
    for spec in FEATURE_SPECS:
        rows[spec.name] = "web" if spec.dtype == "string" else 1.0
    rows["churned"] = np.where(rows["cutoff"] == pd.Timestamp(cutoffs[-1]), np.nan, rows.index % 2)
    rows.sample(frac=1.0, random_state=0).to_parquet(path, index=False)  # shuffled, as an engine may write
    return path


def test_labelled_rows_are_sorted_and_sampled_by_whole_customers(tmp_path: Path) -> None:
    from models.dataset import read_labelled_rows

    path = feature_file(
        tmp_path / "features.parquet", customers=200, cutoffs=["2024-01-01", "2024-02-01", "2024-03-01"]
    )
    everything = read_labelled_rows(path, max_rows=None, seed=1)
    assert len(everything) == 400 and everything["churned"].notna().all()
    assert everything[["cutoff", "customer_id"]].equals(
        everything[["cutoff", "customer_id"]].sort_values(["cutoff", "customer_id"], ignore_index=True)
    )
    sample = read_labelled_rows(path, max_rows=200, seed=1)
    per_customer = sample.groupby("customer_id")["cutoff"].nunique()
    assert (per_customer == 2).all()  # a kept customer keeps all their labelled cutoffs
    assert 140 <= len(sample) <= 260
    assert sample.equals(read_labelled_rows(path, max_rows=200, seed=1))


def test_the_sampled_customers_are_those_the_per_row_hash_keeps(tmp_path: Path) -> None:
    """The keep decision is made once per customer: the same rows as hashing every row's id."""
    import pyarrow as pa

    from models.dataset import _customer_share, read_labelled_rows

    path = feature_file(
        tmp_path / "features.parquet", customers=300, cutoffs=["2024-01-01", "2024-02-01", "2024-03-01"]
    )
    everything = read_labelled_rows(path, max_rows=None, seed=3)
    per_row = everything[_customer_share(pa.array(everything["customer_id"].astype(str)), 250 / 600, 3)]
    sample = read_labelled_rows(path, max_rows=250, seed=3)
    assert 0 < len(sample) < len(everything)
    assert sample.equals(per_row.reset_index(drop=True))


def test_labelled_rows_read_for_a_few_features_are_the_same_rows(tmp_path: Path) -> None:
    """Evaluation reads only the baselines' features of the sampled fitting rows: the same rows, the same values."""
    from models.baselines import FITTING_FEATURES
    from models.dataset import read_labelled_rows

    path = feature_file(
        tmp_path / "features.parquet", customers=200, cutoffs=["2024-01-01", "2024-02-01", "2024-03-01"]
    )
    few = read_labelled_rows(path, max_rows=200, seed=1, features=FITTING_FEATURES)
    assert list(few.columns) == ["customer_id", "cutoff", *FITTING_FEATURES, "churned"]
    assert few.equals(read_labelled_rows(path, max_rows=200, seed=1)[list(few.columns)])


def test_excluded_features_and_groups_leave_the_model_input() -> None:
    rows = pd.DataFrame({spec.name: pd.Series([None], dtype="object") for spec in FEATURE_SPECS})
    params = TrainParams.from_dict({"exclude_features": ["returns", "cancelled_share"]})
    kept = model_input_from(rows, params.exclude_features).features
    returns = [spec.name for spec in FEATURE_SPECS if spec.group == "returns"]
    assert returns and not set(returns) & set(kept)
    assert "cancelled_share" not in kept
    assert len(kept) == len(FEATURE_SPECS) - len(returns) - 1
    assert model_input_from(rows).features == tuple(spec.name for spec in FEATURE_SPECS)
    with pytest.raises(ValueError, match=r"names no feature or group: \['returnz'\]"):
        model_input_from(rows, ("returnz",))


def test_a_chosen_test_cutoff_must_be_a_labelled_cutoff() -> None:
    from models.split import chosen_test_cutoff

    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "a", "b"],
            "cutoff": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]),
            "churned": pd.array([1, 0, 1, pd.NA], dtype="Int8"),
        }
    )
    assert chosen_test_cutoff(frame, None) == pd.Timestamp("2024-01-15")
    assert chosen_test_cutoff(frame, "2024-01-08") == pd.Timestamp("2024-01-08")
    with pytest.raises(ValueError, match=r"not a labelled cutoff .* the nearest is 2024-01-15"):
        chosen_test_cutoff(frame, "2024-01-22")  # not labelled yet
    with pytest.raises(ValueError, match="nearest is 2024-01-08"):
        chosen_test_cutoff(frame, "2024-01-09")
    with pytest.raises(ValueError, match="is not a date"):
        chosen_test_cutoff(frame, "soon")
