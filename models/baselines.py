"""Simpler methods the model must beat on the same test rows.

- recency rule: the longer since the last order, the likelier churn; its probability is the churn rate of the
  fitting rows at that recency (isotonic, so the ranking is the rule's own);
- logistic regression on RFM features (recency, frequency, monetary, tenure), fitted on the fitting rows;
- buy-till-you-die (BG/NBD, from pymc-marketing): fitted on the test cutoff's own history, which uses no label;
  ranked by expected purchases in the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.build import LABEL

RFM_FEATURES = (
    "days_since_last_order",
    "days_since_first_order",
    "orders_90d",
    "orders_365d",
    "orders_total",
    "value_mean",
    "value_365d",
)


@dataclass(frozen=True)
class Scores:
    """A method's churn scores on the test rows: `ranking` orders customers (higher = riskier); `probability` is
    None for a method that does not give one."""

    ranking: np.ndarray
    probability: np.ndarray | None


def days_since_last_order(rows: pd.DataFrame) -> np.ndarray:
    """Recency in days; a customer whose every order was cancelled ranks as the most overdue."""
    days = rows["days_since_last_order"].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(days), rows["days_since_first_order"].to_numpy(dtype=np.float64), days)


def recency_rule(fitting_rows: pd.DataFrame, test_rows: pd.DataFrame) -> Scores:
    recency = days_since_last_order(test_rows)
    rate = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        days_since_last_order(fitting_rows), fitting_rows[LABEL].to_numpy()
    )
    return Scores(ranking=recency, probability=rate.predict(recency))


def rfm_logistic(fitting_rows: pd.DataFrame, test_rows: pd.DataFrame) -> Scores:
    """log1p of the RFM features (all non-negative, heavy-tailed), median-imputed with missing indicators."""
    model = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        FunctionTransformer(np.log1p),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    )
    model.fit(_rfm_matrix(fitting_rows), fitting_rows[LABEL].to_numpy())
    probability = model.predict_proba(_rfm_matrix(test_rows))[:, 1]
    return Scores(ranking=probability, probability=probability)


def _rfm_matrix(rows: pd.DataFrame) -> np.ndarray:
    return np.clip(rows[list(RFM_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan), 0.0, None)


def buy_till_you_die(test_rows: pd.DataFrame, horizon_days: int, seed: int) -> Scores:
    """BG/NBD; raises models.btyd.BTYDUnavailable when the optional extra is not installed."""
    from models.btyd import btyd_churn_scores, fit_bg_nbd

    model = fit_bg_nbd(test_rows, seed)
    scores = btyd_churn_scores(model, test_rows, float(horizon_days))
    return Scores(
        ranking=-scores["expected_purchases"].to_numpy(dtype=np.float64),
        probability=scores["p_no_purchase"].to_numpy(dtype=np.float64),
    )
