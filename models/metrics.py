"""Metrics of churn scores on the test cutoff: ranking, probability quality and what a contact list of k buys.

Ranking and probability metrics come from scikit-learn; lift, capture and precision/recall at k are the counts a
retention team plans with, so they are spelled out here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

TOP_SHARES = (0.05, 0.10, 0.20)
CALIBRATION_BINS = 10
# Clips probabilities of exactly 0 or 1 so one confident miss gives a large, not an infinite, log loss.
_EPS = 1e-6


def score_metrics(
    labels: np.ndarray, ranking: np.ndarray, probability: np.ndarray | None, contact_k: int
) -> dict[str, float]:
    """Ranking metrics of `ranking` (higher = more likely to churn) and, when the method gives one, probability
    metrics of `probability`."""
    labels = np.asarray(labels, dtype=np.int8)
    scores = np.asarray(ranking, dtype=np.float64)
    metrics: dict[str, float] = {"rows": float(len(labels)), "churn_rate": float(labels.mean())}
    if len(np.unique(labels)) == 2:
        metrics["roc_auc"] = float(roc_auc_score(labels, scores))
        metrics["pr_auc"] = float(average_precision_score(labels, scores))
    # One stable sort for every top share and the contact list (each would sort the same scores again).
    order = descending_order(scores)
    for share in TOP_SHARES:
        lift, capture = lift_and_capture(labels, scores, share, order)
        metrics[f"lift_top_{round(share * 100)}pct"] = lift
        metrics[f"capture_top_{round(share * 100)}pct"] = capture
    precision, recall = precision_recall_at_k(labels, scores, contact_k, order)
    metrics["precision_at_k"] = precision
    metrics["recall_at_k"] = recall
    if probability is not None:
        probability = np.asarray(probability, dtype=np.float64)
        metrics["brier"] = float(brier_score_loss(labels, probability))
        metrics["log_loss"] = float(log_loss(labels, np.clip(probability, _EPS, 1 - _EPS), labels=[0, 1]))
        metrics["ece"] = expected_calibration_error(labels, probability)
        metrics["mean_predicted"] = float(probability.mean())
    return metrics


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Row positions from the highest score down; ties by position (a stable sort)."""
    return np.argsort(-scores, kind="stable")


def top_k_mask(scores: np.ndarray, k: int, order: np.ndarray | None = None) -> np.ndarray:
    """The k highest scores; ties broken by position (a stable sort), so the answer never depends on luck. `order`:
    `descending_order(scores)`, when the caller has it."""
    order = descending_order(scores) if order is None else order
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[: max(0, min(k, len(scores)))]] = True
    return mask


def lift_and_capture(
    labels: np.ndarray, scores: np.ndarray, share: float, order: np.ndarray | None = None
) -> tuple[float, float]:
    """Lift: churn rate among the top `share` over the overall rate. Capture: share of all churners found there."""
    k = max(1, int(np.ceil(share * len(labels))))
    top = top_k_mask(scores, k, order)
    churners = labels.sum()
    if churners == 0:
        return float("nan"), float("nan")
    return float(labels[top].mean() / labels.mean()), float(labels[top].sum() / churners)


def precision_recall_at_k(
    labels: np.ndarray, scores: np.ndarray, k: int, order: np.ndarray | None = None
) -> tuple[float, float]:
    """If the team contacts the k highest-risk customers: the share of them who churn, and the share of all
    churners they reach."""
    top = top_k_mask(scores, k, order)
    churners = labels.sum()
    precision = float(labels[top].mean()) if top.any() else float("nan")
    return precision, float(labels[top].sum() / churners) if churners else float("nan")


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Row-weighted mean |observed rate - mean predicted| over equal-width probability bins."""
    table = calibration_table(labels, probabilities, bins)
    return float((table["rows"] * (table["observed"] - table["predicted"]).abs()).sum() / len(labels))


def calibration_table(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Per non-empty equal-width bin: rows, mean predicted probability, observed churn rate. Bins are (low, high]
    (the first also holds 0), as in scikit-learn's `calibration_curve`, so the two agree on values at an edge."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_of = np.searchsorted(edges[1:-1], probabilities, side="left")
    frame = pd.DataFrame({"bin": bin_of, "predicted": probabilities, "observed": labels})
    table = frame.groupby("bin").agg(
        rows=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean")
    )
    return table.reset_index()


def cumulative_gains(labels: np.ndarray, scores: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Share of churners captured when contacting the top x share of customers, on a fixed grid of x."""
    order = np.argsort(-scores, kind="stable")
    captured = np.concatenate([[0.0], np.cumsum(labels[order]) / max(labels.sum(), 1)])
    contacted = np.linspace(0.0, 1.0, points)
    return pd.DataFrame({"contacted": contacted, "captured": captured[np.round(contacted * len(labels)).astype(int)]})
