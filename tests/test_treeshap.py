"""TreeSHAP from per-leaf tables gives LightGBM's pred_contrib values: missing values of every missing type,
categorical splits, features split on more than once along a path, single-leaf trees, and pred_contrib itself where
a path is too deep to tabulate."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models import treeshap
from models.artifact import ChurnModel, model_array
from models.calibration import Calibration
from models.dataset import ModelInput
from models.treeshap import leaf_table, tree_tables

ROWS = 4000


def synthetic(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric features with missing values and exact zeros, and a categorical one, all bearing on the label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=ROWS),
            "b": rng.exponential(size=ROWS),
            "c": rng.integers(0, 4, size=ROWS).astype(float),
            "d": rng.normal(size=ROWS),
            "kind": pd.Categorical(rng.choice(["x", "y", "z", "w"], size=ROWS), categories=["w", "x", "y", "z"]),
        }
    )
    frame.loc[rng.random(ROWS) < 0.2, "a"] = np.nan
    frame.loc[rng.random(ROWS) < 0.1, "b"] = np.nan
    frame.loc[rng.random(ROWS) < 0.05, "kind"] = np.nan
    logit = (
        np.nan_to_num(frame["a"].to_numpy(), nan=1.5) * 1.2 - np.nan_to_num(frame["b"].to_numpy(), nan=2.0)
        + (frame["c"] == 0) * 1.5 + np.sin(3 * frame["d"]) + frame["kind"].isin(["x", "z"]) * 0.8
    )  # fmt: skip
    label = (logit + rng.logistic(size=ROWS) > 0).astype(int)
    return frame, label


def fitted(params: dict[str, object], rounds: int = 40, seed: int = 0) -> tuple[lgb.Booster, pd.DataFrame]:
    frame, label = synthetic(seed)
    settings = {"objective": "binary", "verbose": -1, "num_leaves": 31, "min_child_samples": 10, "seed": seed}
    booster = lgb.train({**settings, **params}, lgb.Dataset(frame, label), num_boost_round=rounds)
    return booster, frame


@pytest.mark.parametrize(
    "params",
    [
        {},  # missing type NaN on the features with missing values, None elsewhere
        {"use_missing": False},  # missing type None everywhere: NaN is read as 0
        {"zero_as_missing": True},  # missing type Zero: 0 and NaN are missing
        {"num_leaves": 63, "max_depth": 12, "min_child_samples": 2, "bagging_fraction": 0.7, "bagging_freq": 1},
    ],
    ids=["nan", "no-missing", "zero-as-missing", "deep-bagged"],
)
def test_table_shap_values_are_pred_contrib_values(params: dict[str, object]) -> None:
    booster, frame = fitted(params)
    expected = booster.predict(frame, pred_contrib=True)
    codes = frame.assign(kind=frame["kind"].cat.codes.replace(-1, np.nan).astype(float)).to_numpy(dtype=float)
    values = tree_tables(booster).contributions(codes)
    assert np.abs(values - expected).max() < 1e-12
    # SHAP values add up to the raw prediction.
    assert np.allclose(values.sum(axis=1), booster.predict(frame, raw_score=True))


def test_a_tree_of_one_leaf_adds_to_the_expected_value_only() -> None:
    frame, label = synthetic()
    # A leaf needs more rows than there are: no tree can split.
    settings = {"objective": "binary", "verbose": -1, "min_child_samples": ROWS}
    booster = lgb.train(settings, lgb.Dataset(frame, label), num_boost_round=3)
    codes = frame.assign(kind=frame["kind"].cat.codes.astype(float)).to_numpy(dtype=float)
    values = tree_tables(booster).contributions(codes)
    assert np.abs(values - booster.predict(frame, pred_contrib=True)).max() < 1e-12
    assert (values[:, :-1] == 0).all()


def test_leaf_table_is_the_shapley_formula() -> None:
    """Against the Shapley sum over subsets written out for a path of three features."""
    zero = np.array([0.6, 0.3, 0.45])
    value = 2.5
    table = leaf_table(zero, value)
    d = len(zero)
    for pattern in range(1 << d):
        follows = [pattern >> k & 1 for k in range(d)]
        for j in range(d):
            others = [k for k in range(d) if k != j]
            expected = 0.0
            for mask in range(1 << len(others)):
                subset = [others[i] for i in range(len(others)) if mask >> i & 1]
                size = len(subset)
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                product = np.prod([follows[k] for k in subset]) * np.prod([zero[k] for k in others if k not in subset])
                expected += weight * product
            assert table[pattern, j] == pytest.approx(value * (follows[j] - zero[j]) * expected, abs=1e-15)


def churn_model(booster: lgb.Booster, frame: pd.DataFrame) -> ChurnModel:
    model_input = ModelInput(features=tuple(frame.columns), categories={"kind": tuple(frame["kind"].cat.categories)})
    calibration = Calibration.from_dict({"method": "sigmoid", "a": 1.0, "b": 0.0})
    return ChurnModel(booster, model_input, calibration, training={})


def test_the_model_explains_by_tables_or_by_pred_contrib_when_a_path_is_too_deep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    booster, frame = fitted({})
    expected = booster.predict(frame, pred_contrib=True)
    tabled = churn_model(booster, frame)
    assert tabled.shap_tables is not None
    assert np.abs(tabled.contributions(frame).to_numpy() - expected).max() < 1e-12
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 1)
    untabled = churn_model(booster, frame)
    assert untabled.shap_tables is None
    assert np.array_equal(untabled.contributions(frame).to_numpy(), expected)


def test_the_model_falls_back_to_pred_contrib_when_the_tables_disagree_with_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    booster, frame = fitted({})
    model = churn_model(booster, frame)
    assert model.shap_tables is not None
    monkeypatch.setattr(
        treeshap.TreeTables, "contributions", lambda self, matrix: np.zeros((len(matrix), matrix.shape[1] + 1))
    )
    assert np.array_equal(model.contributions(frame).to_numpy(), booster.predict(frame, pred_contrib=True))
    assert "disagree" in caplog.text


def test_model_array_codes_categoricals_as_lightgbm_does() -> None:
    booster, frame = fitted({})
    array = model_array(churn_model(booster, frame).matrix(frame))
    assert np.isnan(array[frame["kind"].isna().to_numpy(), -1]).all()
    known = frame["kind"].notna().to_numpy()
    assert np.array_equal(array[known, -1], frame["kind"].cat.codes.to_numpy()[known].astype(float))
