"""Plot data for DVC (CSV on fixed grids, one column per method), the same curves as images for MLflow, and images
for the model's explanations.

Every method has a column even when it was not run (then empty), so `dvc.yaml`'s plot definitions stay valid for
any data source. Titles, axis labels and method colours are defined once here: `dvc.yaml` and the templates in
`.dvc/plots/` repeat them, and a test keeps them in step, so DVC and MLflow show the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
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
# One colour per method, in every figure (the DVC templates' colour scale holds the same).
METHOD_COLOURS = {
    "lightgbm": "#d62728",
    "recency_rule": "#7f7f7f",
    "rfm_logistic": "#1f77b4",
    "bg_nbd": "#2ca02c",
    "pareto_nbd": "#17becf",
    "oracle": "#9467bd",
}


@dataclass(frozen=True)
class Curve:
    """How a curve table is shown: its title, x column, axis labels with units, and the dashed diagonal's meaning
    (None: no diagonal)."""

    title: str
    x: str
    x_label: str
    y_label: str
    diagonal: str | None


CURVES = {
    "roc": Curve(
        "ROC on the test cutoff", "fpr", "false positive rate (share of stayers flagged, 0-1)",
        "true positive rate (share of churners flagged, 0-1)", "random ranking",
    ),
    "pr": Curve(
        "Precision-recall on the test cutoff", "recall", "recall (share of churners found, 0-1)",
        "precision (share of flagged who churn, 0-1)", None,
    ),
    "gains": Curve(
        "Cumulative gains on the test cutoff", "contacted", "share of customers contacted, highest risk first (0-1)",
        "share of churners reached (0-1)", "random ranking",
    ),
    "calibration": Curve(
        "Calibration on the test cutoff", "predicted", "mean predicted churn probability in the bin (bins of 0.1)",
        "observed churn rate in the bin (0-1)", "perfect calibration",
    ),
}  # fmt: skip


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


def calibration_plot_table(labels: np.ndarray, methods: dict[str, Scores], columns: tuple[str, ...]) -> pd.DataFrame:
    """Per method that gives probabilities (in `columns` order) and per non-empty bin: method, predicted, observed,
    rows. Long, not one column per method: each method's bins have their own mean predicted probability."""
    tables = [
        calibration_table(labels, scores.probability).assign(method=name)
        for name in columns
        if (scores := methods.get(name)) is not None and scores.probability is not None
    ]
    return pd.concat(tables, ignore_index=True)[["method", "predicted", "observed", "rows"]].round(5)


def curve_figure(name: str, table: pd.DataFrame, path: Path) -> None:
    """A curve table (`curve_tables` or `calibration_plot_table`) as an image, titled and labelled as in CURVES."""
    curve = CURVES[name]
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    if curve.diagonal is not None:
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label=curve.diagonal)
    if "method" in table.columns:  # long: one line per method
        for method, rows in table.groupby("method", sort=False):
            axis.plot(rows[curve.x], rows["observed"], marker="o", color=METHOD_COLOURS.get(str(method)),
                      label=str(method))  # fmt: skip
    else:
        for method in table.columns.drop(curve.x):
            if table[method].notna().any():
                axis.plot(table[curve.x], table[method], color=METHOD_COLOURS.get(method), label=method)
    axis.set(title=curve.title, xlabel=curve.x_label, ylabel=curve.y_label, xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    _save(figure, path)


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
