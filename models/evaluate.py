"""Out-of-time evaluation: every method's metrics on the test cutoff, overall and per customer cohort."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.build import LABEL
from models.baselines import Scores
from models.metrics import score_metrics


@dataclass(frozen=True)
class EvaluateParams:
    """The `evaluate` block of params.yaml."""

    # How many customers the retention team can contact: precision and recall are reported at this k.
    contact_k: int = 1000
    # Compare with the generator's true probabilities (synthetic data only; set false for your own data).
    oracle: bool = True
    # Paired bootstrap resamples of the test customers for 95 % intervals of each ROC-AUC and of the model's gain
    # over each other method; 0 skips them.
    bootstrap_resamples: int = 1000


MODEL = "lightgbm"
BASELINES = ("recency_rule", "rfm_logistic", "bg_nbd", "pareto_nbd")
ORACLE = "oracle"
METHODS = (MODEL, *BASELINES, ORACLE)
# The best any model can do from the history customers show (the synthetic shop's mechanism and priors, no latent
# state): the ceiling the model's gain over the baselines is measured against. In evaluation.json and MLflow beside
# the other methods; the plots keep to METHODS.
OBSERVABLE_ORACLE = "observable_oracle"
# Four decimals: the bootstrap intervals of ROC-AUC are a few thousandths wide.
HEADLINE_DECIMALS = 4
# The model's overall metrics that `headline` carries (under its own names).
HEADLINE_MODEL_METRICS = frozenset({"rows", "roc_auc", "pr_auc", "brier", "ece", "lift_top_10pct"})

# Cohorts the service team asks about; a cohort whose defining feature is unavailable (null) is empty.
COHORTS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "bad_experience_90d": lambda rows: rows["bad_experiences_90d"].fillna(0) > 0,
    "first_time_buyer": lambda rows: rows["orders_total"] <= 1,
    "repeat_buyer": lambda rows: rows["orders_total"] >= 2,
}


def evaluate_methods(test_rows: pd.DataFrame, methods: dict[str, Scores], contact_k: int) -> dict[str, Any]:
    """{"overall": {method: metrics}, "cohorts": {cohort: {method: metrics}}} on the same rows for every method."""
    labels = test_rows[LABEL].to_numpy(dtype=np.int8)
    result: dict[str, Any] = {"overall": _metrics_by_method(labels, methods, np.ones(len(labels), bool), contact_k)}
    result["cohorts"] = {
        name: _metrics_by_method(labels, methods, in_cohort(test_rows).to_numpy(dtype=bool), contact_k)
        for name, in_cohort in COHORTS.items()
    }
    return result


def joined_evaluations(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """Two `evaluate_methods` results on the same rows for different methods as one, `then`'s methods after
    `first`'s: the same as evaluating them all at once."""
    return {
        "overall": {**first["overall"], **then["overall"]},
        "cohorts": {name: {**first["cohorts"][name], **then["cohorts"][name]} for name in first["cohorts"]},
    }


def _metrics_by_method(
    labels: np.ndarray, methods: dict[str, Scores], rows: np.ndarray, contact_k: int
) -> dict[str, dict[str, float]]:
    if not rows.any():
        return {}
    return {
        name: score_metrics(
            labels[rows], scores.ranking[rows], None if scores.probability is None else scores.probability[rows],
            contact_k,
        )
        for name, scores in methods.items()
    }  # fmt: skip


def comparison(overall: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The model's ROC-AUC against the best baseline and, when known, the share of the gap from the best baseline
    to each oracle that the model closes."""
    baselines = {name: overall[name]["roc_auc"] for name in BASELINES if name in overall}
    if MODEL not in overall or not baselines:
        return {}
    best = max(baselines, key=lambda name: baselines[name])
    model_auc = overall[MODEL]["roc_auc"]
    result: dict[str, Any] = {
        "best_baseline": best,
        "roc_auc_gain_over_best_baseline": model_auc - baselines[best],
    }
    for oracle in (ORACLE, OBSERVABLE_ORACLE):
        if oracle in overall:
            gap = overall[oracle]["roc_auc"] - baselines[best]
            result[f"{oracle}_gap_closed"] = (model_auc - baselines[best]) / gap if gap > 0 else None
    return result


def headline(detail: dict[str, Any]) -> dict[str, Any]:
    """The numbers people compare between runs, from the full evaluation (`detail`): the model's test rows,
    ROC-AUC and the best baseline's, the gain with its 95 % paired bootstrap interval, PR-AUC, Brier, ECE, lift in the
    top 10 % and ROC-AUC among customers with a bad experience in the last 90 days. Short flat names keep
    `dvc metrics show` and `dvc exp show --only-changed` under 200 characters wide (the latter also shows the
    experiment's name, its params and a 36-character hash of data/models); a value that was not computed is None."""
    model = detail["overall"][MODEL]
    best = detail["comparison"].get("best_baseline")
    interval = detail.get("bootstrap", {}).get("gain_over", {}).get(best, [None, None])
    values = {
        "test_rows": int(model["rows"]),
        "roc_auc": model.get("roc_auc"),
        "baseline": best,
        "baseline_roc_auc": detail["overall"][best]["roc_auc"] if best else None,
        "gain": detail["comparison"].get("roc_auc_gain_over_best_baseline"),
        "gain_lo": interval[0],
        "gain_hi": interval[1],
        "pr_auc": model.get("pr_auc"),
        "brier": model.get("brier"),
        "ece": model.get("ece"),
        "lift_10": model.get("lift_top_10pct"),
        "bad_exp_auc": detail["cohorts"].get("bad_experience_90d", {}).get(MODEL, {}).get("roc_auc"),
    }
    return {
        key: round(value, HEADLINE_DECIMALS) if isinstance(value, float) else value for key, value in values.items()
    }
