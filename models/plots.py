"""Plot data for DVC (CSV on fixed grids, one column per method) and images for the model's explanations.

Every method has a column even when it was not run (then empty), so `dvc.yaml`'s plot definitions stay valid for
any data source.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from models.baselines import Scores
from models.metrics import calibration_table, cumulative_gains

GRID = np.linspace(0.0, 1.0, 101)
TOP_FEATURES = 20


def curve_tables(labels: np.ndarray, methods: dict[str, Scores], columns: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """roc (tpr per fpr), pr (precision per recall), gains (share of churners captured per share contacted)."""
    roc = pd.DataFrame({"fpr": GRID})
    pr = pd.DataFrame({"recall": GRID})
    gains = pd.DataFrame({"contacted": GRID})
    for name in columns:
        scores = methods.get(name)
        if scores is None:
            roc[name] = pr[name] = gains[name] = np.nan
            continue
        fpr, tpr, _ = roc_curve(labels, scores.ranking)
        roc[name] = np.interp(GRID, fpr, tpr)
        pr[name] = _interpolated_precision(labels, scores.ranking)
        gains[name] = cumulative_gains(labels, scores.ranking, len(GRID))["captured"].to_numpy()
    return {"roc": roc.round(5), "pr": pr.round(5), "gains": gains.round(5)}


def _interpolated_precision(labels: np.ndarray, ranking: np.ndarray) -> np.ndarray:
    """The best precision reachable at a recall of at least each grid point (the usual PR interpolation)."""
    precision, recall, _ = precision_recall_curve(labels, ranking)
    # sklearn ends the arrays with a point (recall 0, precision 1) that no threshold reaches; it would lift the
    # envelope to 1 everywhere.
    precision, recall = precision[:-1], recall[:-1]
    # recall decreases along the arrays, so the running max from the start is the best precision at a recall at
    # least as high: the envelope.
    envelope = np.maximum.accumulate(precision)
    index = np.searchsorted(-recall, -GRID, side="right") - 1
    return envelope[np.clip(index, 0, len(envelope) - 1)]


def calibration_plot_table(labels: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    table = calibration_table(labels, probability)
    return table[["predicted", "observed", "rows"]].round(5)


def feature_importance_figure(importance: pd.Series, path: Path) -> None:
    """Total gain per feature, the largest first."""
    top = importance.sort_values(ascending=False).head(TOP_FEATURES)[::-1]
    figure, axis = plt.subplots(figsize=(8, 0.3 * len(top) + 1.5))
    axis.barh(top.index, top.to_numpy() / top.sum() * 100)
    axis.set_title(f"LightGBM feature importance (top {len(top)} by total gain)")
    axis.set_xlabel("share of the total split gain of these features (%)")
    _save(figure, path)


def shap_summary_figure(contributions: pd.DataFrame, matrix: pd.DataFrame, path: Path) -> None:
    """shap_summary_plot saved as an image."""
    _save(shap_summary_plot(contributions, matrix), path)


def shap_summary_plot(contributions: pd.DataFrame, matrix: pd.DataFrame) -> plt.Figure:
    """Per feature, each customer's SHAP value, coloured by the feature's value (rank within the feature); the
    features with the largest mean |SHAP| (all of `contributions`' columns but `bias`: pass a subset to focus)."""
    features = (
        contributions.drop(columns="bias", errors="ignore")
        .abs()
        .mean()
        .sort_values(ascending=False)
        .head(TOP_FEATURES)
        .index
    )
    figure, axis = plt.subplots(figsize=(9, 0.35 * len(features) + 1.5))
    rng = np.random.default_rng(0)
    colour_map = plt.get_cmap("coolwarm").with_extremes(bad="grey")
    for position, name in enumerate(reversed(features)):
        shap = contributions[name].to_numpy()
        values = matrix[name]
        codes = values.cat.codes.replace(-1, np.nan) if isinstance(values.dtype, pd.CategoricalDtype) else values
        colour = pd.Series(codes.to_numpy(dtype=float)).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(shap))
        points = axis.scatter(shap, position + jitter, c=colour, cmap=colour_map, s=2, alpha=0.5, rasterized=True)
    axis.set_yticks(range(len(features)), list(reversed(features)))
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.set_title("SHAP values on the test cutoff (LightGBM pred_contrib)")
    axis.set_xlabel("contribution to the churn log-odds (raw model)")
    colourbar = figure.colorbar(points, ax=axis)
    colourbar.set_label("feature value (percentile; grey = missing)")
    figure.tight_layout()
    return figure


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
