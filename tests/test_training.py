"""The training recipe and MLflow on a small synthetic shop: determinism, directional behaviour, the run's contents
and the champion/challenger aliases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_SPECS, LABEL, feature_table, features_at
from features.cutoffs import FeatureParams, cutoff_schedule
from features.inputs import inputs_from_frames
from models.artifact import ChurnModel, load_model, save_model
from models.dataset import plain_input
from models.split import last_labelled_cutoff
from models.tracking import Evidence
from models.train import TrainParams, fit_recipe
from pipelines.sources.synthetic import SyntheticShopParams, generate_shop

SHOP = SyntheticShopParams(n_customers=4000, dirty_share=0.0, seed=11)
AS_OF = pd.Timestamp(SHOP.end_date)
FEATURES = FeatureParams(first_cutoff="2024-01-01", every_days=60)
HORIZON = FEATURES.horizon_days
# Default params, fewer threads so the test does not compete with itself; determinism holds for any fixed count.
PARAMS = replace(TrainParams(), num_threads=1)
ALL_FEATURES = tuple(spec.name for spec in FEATURE_SPECS)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate_shop(SHOP).tables


@pytest.fixture(scope="module")
def frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    inputs = inputs_from_frames(tables, AS_OF)
    cutoffs = cutoff_schedule(pd.Timestamp(FEATURES.first_cutoff), FEATURES.every_days, AS_OF)
    table = feature_table(inputs, cutoffs, FEATURES).execute()
    return table.sort_values(["cutoff", "customer_id"], ignore_index=True)


@pytest.fixture(scope="module")
def backtest(frame: pd.DataFrame) -> ChurnModel:
    model, _ = fit_recipe(
        frame, last_labelled_cutoff(frame), HORIZON, PARAMS, data_hash="test", available_features=ALL_FEATURES
    )
    return model


def test_same_data_and_params_give_a_byte_identical_model(frame: pd.DataFrame, tmp_path: Path) -> None:
    deploy_at = last_labelled_cutoff(frame)
    for name in ("first", "second"):
        model, _ = fit_recipe(frame, deploy_at, HORIZON, PARAMS, data_hash="test", available_features=ALL_FEATURES)
        save_model(model, tmp_path / name)
    for file in ("model.txt", "metadata.json"):
        assert (tmp_path / "first" / file).read_bytes() == (tmp_path / "second" / file).read_bytes(), file


def test_backtest_model_is_fitted_on_labels_known_at_the_test_cutoff(frame: pd.DataFrame, backtest: ChurnModel) -> None:
    test_cutoff = last_labelled_cutoff(frame)
    fitted = pd.to_datetime(backtest.training["fitting_cutoffs"])
    assert (fitted + pd.Timedelta(days=HORIZON) <= test_cutoff).all()
    assert test_cutoff not in fitted
    assert backtest.training["best_iteration"] > 0


def test_last_year_moves_the_level_by_the_recipe_s_miss_a_year_before(
    frame: pd.DataFrame, backtest: ChurnModel
) -> None:
    from scipy.special import expit, logit

    # Cutoffs every 60 days from 2024-01-01; the test cutoff 2025-08-23 is fitted on cutoffs up to 2025-04-25, which
    # hold August in 2024 only (train.season_anchor: last_year, the default). A year before it, 2024-08-23, the
    # season cutoff is 2024-08-28; the second model leaves out it and the cutoffs whose 90-day label windows overlap
    # its own (2024-06-29, 2024-10-27), and has cutoffs on both sides of it.
    deploy_at = last_labelled_cutoff(frame)
    assert deploy_at == pd.Timestamp("2025-08-23") and PARAMS.season_anchor == "last_year"
    level = backtest.training["season_level"]
    assert level["applied"] and level["season_cutoffs"] == ["2024-08-28"]
    assert level["held_out_fitting_cutoffs"] == len(backtest.training["fitting_cutoffs"]) - 3
    season = frame[frame["cutoff"] == pd.Timestamp("2024-08-28")]
    assert level["observed"] == pytest.approx(float(season[LABEL].mean()))
    # The shift sits in the calibration: the model's probabilities are those without it, moved in log-odds.
    assert backtest.calibration.shift == level["logit_shift"] != 0.0
    test = frame[frame["cutoff"] == deploy_at]
    plain = replace(backtest, calibration=replace(backtest.calibration, shift=0.0)).predict(test)
    assert backtest.predict(test) == pytest.approx(expit(logit(plain) + level["logit_shift"]), rel=1e-9)


def test_model_beats_recency_on_the_test_cutoff(frame: pd.DataFrame, backtest: ChurnModel) -> None:
    from sklearn.metrics import roc_auc_score

    test = frame[frame["cutoff"] == last_labelled_cutoff(frame)]
    labels = test[LABEL].astype(int)
    model_auc = roc_auc_score(labels, backtest.predict(test))
    recency_auc = roc_auc_score(labels, test["days_since_last_order"].fillna(1e6))
    assert model_auc > recency_auc


def with_late_delivery(orders: pd.DataFrame, order_ids: pd.Index, days_late: float) -> pd.DataFrame:
    """The same orders, except that `order_ids` arrived `days_late` days after their promised date."""
    late = orders.copy()
    chosen = late["order_id"].isin(order_ids)
    late.loc[chosen, "delivered_at"] = late.loc[chosen, "promised_delivery_at"] + pd.Timedelta(days=days_late)
    return late


def test_adding_a_bad_experience_never_lowers_the_predicted_risk(
    tables: dict[str, pd.DataFrame], frame: pd.DataFrame, backtest: ChurnModel
) -> None:
    cutoff = last_labelled_cutoff(frame)
    orders = tables["orders"]
    # Orders delivered on time, whose late delivery would be known well before the cutoff: one per customer.
    on_time = orders[
        (orders["delivered_at"] <= orders["promised_delivery_at"])
        & (orders["promised_delivery_at"] < cutoff - pd.Timedelta(days=10))
        & (orders["ordered_at"] > cutoff - pd.Timedelta(days=300))
    ]
    chosen = on_time.groupby("customer_id")["order_id"].last().head(400)
    before = features_at(inputs_from_frames(tables, AS_OF), cutoff, FEATURES).execute()
    worse = {**tables, "orders": with_late_delivery(orders, pd.Index(chosen.to_numpy()), days_late=5.0)}
    after = features_at(inputs_from_frames(worse, AS_OF), cutoff, FEATURES).execute()
    before, after = (table.set_index("customer_id").loc[chosen.index] for table in (before, after))
    assert (after["late_delivery_total"] == before["late_delivery_total"] + 1).all()  # the change took effect
    increase = backtest.predict(after) - backtest.predict(before)
    assert (increase >= -1e-12).all(), f"{(increase < 0).sum()} customers got less risky, e.g. {increase.min():.4f}"
    assert increase.mean() > 0


def test_relabelling_customer_ids_changes_no_prediction(frame: pd.DataFrame, backtest: ChurnModel) -> None:
    test = frame[frame["cutoff"] == last_labelled_cutoff(frame)]
    renamed = test.assign(customer_id="x" + test["customer_id"])
    assert np.array_equal(backtest.predict(test), backtest.predict(renamed))


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def evidence(model: ChurnModel, folder: Path, frame: pd.DataFrame, resamples: int = 200) -> Evidence:
    save_model(model, folder)
    test = frame[frame["cutoff"] == last_labelled_cutoff(frame)]
    return Evidence(model, folder, test, resamples, seed=0)


def test_mlflow_run_holds_params_metrics_curve_plots_and_the_whole_scorer(
    tracking: str, frame: pd.DataFrame, backtest: ChurnModel, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from models.tracking import log_run
    from models.tracking_settings import TrackingSettings

    folder = tmp_path / "model"
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc.csv").write_text("fpr,lightgbm\n0,0\n1,1\n")
    settings = TrackingSettings(experiment="test", model_name="churn-test")
    judged_on = evidence(backtest, folder, frame)
    record = log_run(
        settings, backtest, folder, judged_on, params={"train.num_leaves": 31},
        metrics={"test_roc_auc": 0.8}, tags={"git_commit": "abc"}, artifacts=[plots], run_name="exp-one",
    )  # fmt: skip
    client = MlflowClient(tracking)
    run = client.get_run(record.run_id)
    assert run.info.run_name == "exp-one"
    assert run.data.params["train.num_leaves"] == "31"
    assert run.data.metrics["test_roc_auc"] == 0.8
    assert run.data.tags["git_commit"] == "abc"
    curve = client.get_metric_history(record.run_id, "validation/binary_logloss")
    assert len(curve) == len(backtest.training["validation_curve"]["binary_logloss"])
    assert [artifact.path for artifact in client.list_artifacts(record.run_id, "plots")] == ["plots/roc.csv"]
    assert record.alias == "champion"
    loaded = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    served = np.asarray(loaded.predict(plain_input(judged_on.test_rows, backtest.model_input)))
    assert np.array_equal(served, load_model(folder).predict(judged_on.test_rows))


def test_champion_is_replaced_only_by_a_gain_whose_interval_is_above_zero(
    tracking: str, frame: pd.DataFrame, backtest: ChurnModel, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from models.tracking import log_run
    from models.tracking_settings import TrackingSettings

    deploy_at = last_labelled_cutoff(frame)
    # Recency and frequency only, a few rounds: clearly worse than the full model.
    weak_params = replace(PARAMS, exclude_features=["satisfaction", "returns", "relationship", "trend"], max_rounds=5)
    weak, _ = fit_recipe(frame, deploy_at, HORIZON, weak_params, data_hash="test", available_features=ALL_FEATURES)
    # The full recipe with another seed: as good as the backtest model, within noise.
    twin, _ = fit_recipe(
        frame, deploy_at, HORIZON, replace(PARAMS, seed=7), data_hash="test", available_features=ALL_FEATURES
    )
    settings = TrackingSettings(experiment="test", model_name="churn-aliases")
    records = [
        log_run(settings, model, tmp_path / name, evidence(model, tmp_path / name, frame), {}, {}, {}, [])
        for name, model in (("weak", weak), ("full", backtest), ("twin", twin), ("same", backtest))
    ]
    assert [record.alias for record in records] == ["champion", "champion", "challenger", "challenger"]
    first, better, twin_record, same = (record.promotion for record in records)
    assert first.gain_interval is None and first.reason == "no champion yet"
    assert better.gain_interval is not None and better.gain_interval[0] > 0 and better.compared_with == "1"
    assert twin_record.gain_interval is not None and twin_record.gain_interval[0] <= 0 < twin_record.gain_interval[1]
    assert same.gain_interval == [0.0, 0.0]  # the champion itself again: no evidence of a gain
    client = MlflowClient(tracking)
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "2"
    tags = client.get_model_version(settings.model_name, "3").tags
    assert tags["promotion"] == "challenger" and tags["compared_with_version"] == "2"
    assert tags["roc_auc_gain_over_champion_95"].startswith("[-")


def test_promotion_needs_the_whole_interval_above_the_threshold() -> None:
    from models.tracking import promotes

    assert promotes([0.001, 0.01], 0.0)
    assert not promotes([0.0, 0.01], 0.0)
    assert not promotes([-0.004, 0.004], 0.0)
    assert not promotes([0.001, 0.01], 0.002)
