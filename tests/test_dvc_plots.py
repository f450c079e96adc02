"""The DVC plots as DVC serves them (`dvc plots show --json`): one series per method, told apart by colour, and
curves that agree with the metrics (a precision-recall curve at 1.0 everywhere cannot have a PR-AUC of 0.88)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from models.baselines import Scores
from models.evaluate import METHODS
from models.metrics import score_metrics
from models.plots import CURVES, METHOD_COLOURS, calibration_plot_table, curve_tables

# The method the test leaves out, as the orders-only or own-data runs leave out the oracle or BG/NBD.
SKIPPED = "bg_nbd"


def plot_definitions() -> dict[str, dict[str, Any]]:
    """dvc.yaml's data plots by title."""
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    return {title: spec for plot in plots if isinstance(plot, dict) for title, spec in plot.items()}


def methods_on_a_test_set() -> tuple[np.ndarray, dict[str, Scores]]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 3000)
    methods = {}
    for name, noise in zip([name for name in METHODS if name != SKIPPED], (1.0, 3.0, 2.0, 2.5, 0.5), strict=True):
        raw = labels + rng.normal(0.0, noise, len(labels))
        methods[name] = Scores(ranking=raw, probability=1 / (1 + np.exp(-(raw - 0.5) * 2 / noise)))
    return labels, methods


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """`dvc plots show --json` on a copy of the project's plot definitions and templates, with plot data of
    known methods; and the methods' metrics."""
    work = tmp_path_factory.mktemp("plots")
    labels, methods = methods_on_a_test_set()
    (work / "reports" / "plots").mkdir(parents=True)
    tables = {**curve_tables(labels, methods, METHODS), "calibration": calibration_plot_table(labels, methods, METHODS)}
    for name, table in tables.items():
        table.to_csv(work / "reports" / "plots" / f"{name}.csv", index=False)
    metrics = {name: score_metrics(labels, scores.ranking, scores.probability, 10) for name, scores in methods.items()}
    definitions = [{title: spec} for title, spec in plot_definitions().items()]
    (work / "dvc.yaml").write_text(yaml.safe_dump({"plots": definitions}, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = {"cwd": work, "env": env, "capture_output": True, "text": True, "check": True}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], **run)  # type: ignore[call-overload]
    shutil.copytree(REPO / ".dvc" / "plots", work / ".dvc" / "plots", dirs_exist_ok=True)
    shown = subprocess.run(["dvc", "plots", "show", "--json"], **run)  # type: ignore[call-overload]
    return json.loads(shown.stdout)["data"], metrics


def series(plot: dict[str, Any], by: str, y: str) -> dict[str, pd.DataFrame]:
    """The plot's data points per value of `by` (the field that tells methods apart)."""
    points = pd.DataFrame(plot["content"]["data"]["values"])
    points[y] = pd.to_numeric(points[y], errors="coerce")
    return {str(name): rows for name, rows in points.groupby(by)}


def colour_field(plot: dict[str, Any]) -> dict[str, Any]:
    return plot["content"]["layer"][0]["encoding"]["color"]


@pytest.mark.parametrize("name", ["roc", "pr", "gains"])
def test_each_method_is_a_series_of_its_own_colour(served: tuple[dict[str, Any], Any], name: str) -> None:
    data, metrics = served
    (plot,) = data[CURVES[name].title]
    colour = colour_field(plot)
    assert colour["field"] == "field"  # the CSV column a point comes from: the method
    assert dict(zip(colour["scale"]["domain"], colour["scale"]["range"], strict=True)) == METHOD_COLOURS
    y = plot["content"]["layer"][0]["encoding"]["y"]["field"]
    by_method = series(plot, "field", y)
    assert set(by_method) == set(METHODS)
    assert by_method[SKIPPED][y].isna().all()
    for method in metrics:
        assert by_method[method][y].notna().all() and by_method[method][y].nunique() > 1, method


def test_curves_agree_with_their_metrics(served: tuple[dict[str, Any], Any]) -> None:
    data, metrics = served
    curves = {}
    for name in ("roc", "pr", "gains"):
        (plot,) = data[CURVES[name].title]
        y = plot["content"]["layer"][0]["encoding"]["y"]["field"]
        curves[name] = {method: np.trapezoid(rows[y].to_numpy(), rows[CURVES[name].x].astype(float).to_numpy())
                        for method, rows in series(plot, "field", y).items() if method in metrics}  # fmt: skip
    for method, values in metrics.items():
        assert curves["roc"][method] == pytest.approx(values["roc_auc"], abs=0.01), method
        # The interpolated PR curve lies on or above the steps average precision sums up, and close to them.
        assert values["pr_auc"] - 0.005 <= curves["pr"][method] <= values["pr_auc"] + 0.03, method
        churn = values["churn_rate"]
        assert curves["gains"][method] == pytest.approx(churn / 2 + (1 - churn) * values["roc_auc"], abs=0.01)


def test_calibration_has_a_series_per_method_and_a_diagonal(served: tuple[dict[str, Any], Any]) -> None:
    data, metrics = served
    (plot,) = data[CURVES["calibration"].title]
    assert colour_field(plot)["field"] == "method"
    by_method = series(plot, "method", "observed")
    assert set(by_method) == set(metrics)
    for method, rows in by_method.items():
        predicted, observed = rows["predicted"].astype(float), rows["observed"]
        ece = (rows["rows"].astype(float) * (observed - predicted).abs()).sum() / rows["rows"].astype(float).sum()
        assert ece == pytest.approx(metrics[method]["ece"], abs=1e-4), method
    diagonal = plot["content"]["layer"][1]
    assert [(point["diagonal_x"], point["diagonal_y"]) for point in diagonal["data"]["values"]] == [(0, 0), (1, 1)]


def test_dvc_titles_and_labels_are_those_of_the_mlflow_images() -> None:
    definitions = plot_definitions()
    for name, curve in CURVES.items():
        spec = definitions[curve.title]
        assert (spec["x"], spec["x_label"], spec["y_label"]) == (curve.x, curve.x_label, curve.y_label), name
        assert spec["template"] == ("calibration" if name == "calibration" else
                                    "methods_diagonal" if curve.diagonal else "methods")  # fmt: skip
        file = next(iter(spec["y"]))
        assert file == f"reports/plots/{name}.csv"
