"""The hyperparameter search (train.search_trials): seeded and byte-identical, the first trial the params as given,
the chosen params the best trial's and in the metadata, each trial a nested MLflow run; off by default."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from features.build import FEATURE_SPECS, feature_table
from features.cutoffs import FeatureParams, cutoff_schedule
from features.inputs import inputs_from_frames
from models.artifact import ChurnModel, save_model
from models.search import SEARCH_SPACE
from models.split import last_labelled_cutoff
from models.train import TrainParams, fit_recipe
from pipelines.sources.synthetic import SyntheticShopParams, generate_shop

SHOP = SyntheticShopParams(n_customers=1500, dirty_share=0.0, seed=5)
AS_OF = pd.Timestamp(SHOP.end_date)
FEATURES = FeatureParams(first_cutoff="2024-01-01", every_days=90)
PARAMS = replace(TrainParams(), num_threads=1, max_rounds=300, search_trials=3)
ALL_FEATURES = tuple(spec.name for spec in FEATURE_SPECS)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    inputs = inputs_from_frames(generate_shop(SHOP).tables, AS_OF)
    cutoffs = cutoff_schedule(pd.Timestamp(FEATURES.first_cutoff), FEATURES.every_days, AS_OF)
    return feature_table(inputs, cutoffs, FEATURES).execute().sort_values(["cutoff", "customer_id"], ignore_index=True)


def fit(frame: pd.DataFrame, params: TrainParams) -> ChurnModel:
    model, _ = fit_recipe(
        frame, last_labelled_cutoff(frame), FEATURES.horizon_days, params, "test", available_features=ALL_FEATURES
    )
    return model


@pytest.fixture(scope="module")
def searched(frame: pd.DataFrame) -> ChurnModel:
    return fit(frame, PARAMS)


def test_the_chosen_params_are_the_best_trials_and_in_the_metadata(searched: ChurnModel) -> None:
    search = searched.training["search"]
    trials = search["trials"]
    assert [trial["number"] for trial in trials] == [0, 1, 2]
    # The first trial is the params as given: the search never does worse on validation than no search.
    assert trials[0]["params"] == {name: getattr(PARAMS, name) for name in SEARCH_SPACE}
    best = min(trials, key=lambda trial: trial["validation_log_loss"])
    assert search["best_trial"] == best["number"] and search["best_params"] == best["params"]
    assert {name: searched.training["params"][name] for name in SEARCH_SPACE} == best["params"]
    assert searched.training["best_iteration"] == best["best_iteration"]
    assert len({tuple(trial["params"].values()) for trial in trials}) == 3


def test_a_rerun_gives_the_same_bytes(frame: pd.DataFrame, searched: ChurnModel, tmp_path: Path) -> None:
    save_model(searched, tmp_path / "first")
    save_model(fit(frame, PARAMS), tmp_path / "second")
    for file in ("model.txt", "metadata.json"):
        assert (tmp_path / "first" / file).read_bytes() == (tmp_path / "second" / file).read_bytes(), file


def test_off_by_default(frame: pd.DataFrame) -> None:
    assert TrainParams().search_trials == 0
    model = fit(frame, replace(PARAMS, search_trials=0))
    assert "search" not in model.training
    assert model.training["params"]["num_leaves"] == PARAMS.num_leaves


def test_a_negative_number_of_trials_is_refused() -> None:
    with pytest.raises(ValueError, match=r"train\.search_trials must be 0"):
        TrainParams.from_dict({"search_trials": -1})


def test_each_trial_is_a_nested_mlflow_run(searched: ChurnModel, tmp_path: Path) -> None:
    import mlflow

    from models.tracking import _log_search_trials

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("search", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        _log_search_trials(experiment_id, searched.training["search"])
    runs = mlflow.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(runs["tags.mlflow.runName"]) == ["search trial 0", "search trial 1", "search trial 2"]
    best = runs[runs["tags.best_trial"] == "true"]
    assert len(best) == 1
    assert float(best["metrics.validation_log_loss"].iloc[0]) == min(
        trial["validation_log_loss"] for trial in searched.training["search"]["trials"]
    )
