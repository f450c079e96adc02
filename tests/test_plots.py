"""Curve tables (ROC, precision-recall, cumulative gains, calibration) against scikit-learn on a hand-worked case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from models.baselines import Scores
from models.plots import GRID, calibration_plot_table, curve_figure, curve_tables

# Ranked by score: churner, stayer, churner, churner, stayer, stayer, churner, stayer, stayer, stayer.
LABELS = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1])


def tables(**methods: np.ndarray) -> dict[str, pd.DataFrame]:
    scores = {name: Scores(ranking=values, probability=None) for name, values in methods.items()}
    return curve_tables(LABELS, scores, tuple(methods))


def at(table: pd.DataFrame, x_column: str, x: float, method: str = "model") -> float:
    return float(table.loc[np.isclose(table[x_column], x), method].iloc[0])


def test_precision_recall_is_the_best_precision_at_a_recall_at_least_this() -> None:
    pr = tables(model=SCORES)["pr"]
    # By hand, contacting the top k: k=1 precision 1 (recall .25), k=3 2/3 (.5), k=4 3/4 (.75), k=7 4/7 (1).
    assert at(pr, "recall", 0.0) == 1.0
    assert at(pr, "recall", 0.25) == 1.0
    assert at(pr, "recall", 0.26) == 0.75
    assert at(pr, "recall", 0.75) == 0.75
    assert at(pr, "recall", 0.76) == pytest.approx(4 / 7, abs=1e-5)
    assert at(pr, "recall", 1.0) == pytest.approx(4 / 7, abs=1e-5)
    # The same from scikit-learn's curve, without the (recall 0, precision 1) point it adds.
    precision, recall, _ = precision_recall_curve(LABELS, SCORES)
    expected = [precision[:-1][recall[:-1] >= r - 1e-12].max() for r in GRID]
    assert pr["model"].to_numpy() == pytest.approx(expected, abs=1e-5)


def test_precision_recall_of_a_useless_ranking_is_the_churn_rate() -> None:
    pr = tables(constant=np.zeros(len(LABELS)))["pr"]
    assert pr["constant"].to_numpy() == pytest.approx(np.full(len(GRID), 0.4))


def test_roc_takes_the_upper_point_of_a_vertical_step() -> None:
    roc = tables(model=SCORES)["roc"]
    # By hand: (0, .25), then (1/6, .25) -> (1/6, .75), (1/2, .75) -> (1/2, 1), (1, 1).
    assert at(roc, "fpr", 0.0) == 0.25
    assert at(roc, "fpr", 0.1) == 0.25
    assert at(roc, "fpr", 0.17) == 0.75
    assert at(roc, "fpr", 0.5) == 1.0
    fpr, tpr, _ = roc_curve(LABELS, SCORES)
    on_steps = np.isin(np.round(GRID, 5), np.round(fpr, 5))
    upper = [tpr[np.isclose(fpr, x)].max() for x in GRID[on_steps]]
    assert roc["model"].to_numpy()[on_steps] == pytest.approx(upper)


def test_gains_are_the_share_of_churners_in_the_top_share_contacted() -> None:
    gains = tables(model=SCORES)["gains"]
    # By hand: top 10 % one churner of four, top 40 % three, top 70 % all four.
    assert at(gains, "contacted", 0.1) == 0.25
    assert at(gains, "contacted", 0.4) == 0.75
    assert at(gains, "contacted", 0.7) == 1.0
    fpr, tpr, _ = roc_curve(LABELS, SCORES, drop_intermediate=False)
    contacted = (tpr * LABELS.sum() + fpr * (len(LABELS) - LABELS.sum())) / len(LABELS)
    for share, captured in zip(contacted, tpr, strict=True):
        assert at(gains, "contacted", round(share, 2)) == pytest.approx(captured)


def test_methods_are_separate_columns_and_a_missing_method_is_empty() -> None:
    scores = {"model": Scores(ranking=SCORES, probability=None)}
    result = curve_tables(LABELS, scores, ("model", "absent"))
    for table in result.values():
        assert table["absent"].isna().all()
        assert table["model"].notna().all()


def test_calibration_matches_scikit_learn_with_values_on_bin_edges() -> None:
    methods = {
        "model": Scores(ranking=SCORES, probability=SCORES),
        "ranking_only": Scores(ranking=SCORES, probability=None),
        "flat": Scores(ranking=SCORES, probability=np.full(len(SCORES), 0.4)),
    }
    table = calibration_plot_table(LABELS, methods, ("model", "ranking_only", "flat", "absent"))
    assert table["method"].unique().tolist() == ["model", "flat"]
    model = table[table["method"] == "model"].reset_index(drop=True)
    # 0.1 and 0.2 sit on bin edges: (0, .1] and (.1, .2] as in scikit-learn.
    observed, predicted = calibration_curve(LABELS, SCORES, n_bins=10, strategy="uniform")
    assert model["observed"].to_numpy() == pytest.approx(observed, abs=1e-5)
    assert model["predicted"].to_numpy() == pytest.approx(predicted, abs=1e-5)
    # By hand: bin (.1, .2] holds 0.15 and 0.2, neither a churner.
    assert model.loc[1, ["predicted", "observed", "rows"]].tolist() == pytest.approx([0.175, 0.0, 2])
    # Everyone at 0.4 (bin (.3, .4]): one point at the churn rate.
    assert table.loc[table["method"] == "flat", ["predicted", "observed", "rows"]].values.tolist() == [[0.4, 0.4, 10]]


def test_curve_figures_are_written(tmp_path: Path) -> None:
    scores = {"model": Scores(ranking=SCORES, probability=SCORES)}
    tables = {
        **curve_tables(LABELS, scores, ("model", "absent")),
        "calibration": calibration_plot_table(LABELS, scores, ("model",)),
    }
    for name, table in tables.items():
        curve_figure(name, table, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000, name
