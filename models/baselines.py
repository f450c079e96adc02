"""Simpler methods the model must beat on the same test rows.

- recency rule: the longer since the last order, the likelier churn; its probability is the churn rate of the
  fitting rows at that recency (isotonic, so the ranking is the rule's own);
- logistic regression in its textbook form: standardised log recency, frequency, monetary value and tenure, its
  regularisation chosen on the validation customers (log loss), then refitted on every fitting row;
- buy-till-you-die (BG/NBD and Pareto/NBD, from pymc-marketing): fitted on the test cutoff's own history, which uses
  no label; ranked by expected purchases in the horizon.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.build import LABEL

# The textbook RFM regression's inputs, each log(1 + x) of a non-negative feature: recency (days since the last
# order), frequency (orders), monetary value (mean order value) and tenure (days since the first order).
RFM_INPUTS = ("recency", "frequency", "monetary", "tenure")
# Inverse regularisation strengths tried on the validation customers (sklearn's C, L2).
RFM_C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
# The features the recency rule and the RFM regression read from the fitting rows (the BTYD models read only the
# test rows): evaluation reads just these of the sampled training rows.
FITTING_FEATURES = ("days_since_last_order", "days_since_first_order", "orders_total", "value_mean")


@dataclass(frozen=True)
class Scores:
    """A method's churn scores on the test rows: `ranking` orders customers (higher = riskier); `probability` is
    None for a method that does not give one."""

    ranking: np.ndarray
    probability: np.ndarray | None
    # What was fitted (e.g. the chosen regularisation, a BTYD model's parameters), for the evaluation report.
    fitted: dict[str, Any] = field(default_factory=dict)


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


def rfm_inputs(rows: pd.DataFrame) -> np.ndarray:
    """The RFM regression's inputs (RFM_INPUTS) as log(1 + x): recency as `days_since_last_order` gives it, orders
    and mean value 0 for a customer whose every order was cancelled."""
    columns = {
        "recency": days_since_last_order(rows),
        "frequency": rows["orders_total"].to_numpy(dtype=np.float64, na_value=np.nan),
        "monetary": rows["value_mean"].to_numpy(dtype=np.float64, na_value=np.nan),
        "tenure": rows["days_since_first_order"].to_numpy(dtype=np.float64, na_value=np.nan),
    }
    matrix = np.column_stack([columns[name] for name in RFM_INPUTS])
    return np.log1p(np.clip(np.nan_to_num(matrix, nan=0.0), 0.0, None))


def rfm_logistic_model(c: float) -> Pipeline:
    """Standardised inputs, L2-regularised logistic regression with inverse strength `c`."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))


def choose_rfm_regularisation(
    train_rows: pd.DataFrame, validation_rows: pd.DataFrame
) -> tuple[float, dict[str, float]]:
    """The C of RFM_C_GRID whose fit on the training rows has the lowest log loss on the validation customers (the
    smallest C of equal ones), with every C's validation log loss."""
    train_x, train_y = rfm_inputs(train_rows), train_rows[LABEL].to_numpy()
    valid_x, valid_y = rfm_inputs(validation_rows), validation_rows[LABEL].to_numpy()
    losses = {
        c: float(
            log_loss(valid_y, rfm_logistic_model(c).fit(train_x, train_y).predict_proba(valid_x)[:, 1], labels=[0, 1])
        )
        for c in RFM_C_GRID
    }
    best = min(RFM_C_GRID, key=lambda c: (round(losses[c], 12), c))
    return best, {str(c): loss for c, loss in losses.items()}


def rfm_logistic(train_rows: pd.DataFrame, validation_rows: pd.DataFrame, test_rows: pd.DataFrame) -> Scores:
    """The textbook RFM regression: C chosen on the validation customers, then refitted on training and validation
    rows together (every fitting row, as the model's own labels at the test cutoff)."""
    c, losses = choose_rfm_regularisation(train_rows, validation_rows)
    fitting = pd.concat([train_rows, validation_rows])
    model = rfm_logistic_model(c).fit(rfm_inputs(fitting), fitting[LABEL].to_numpy())
    probability = model.predict_proba(rfm_inputs(test_rows))[:, 1]
    regression = model[-1]
    fitted = {
        "C": c,
        "validation_log_loss": losses,
        "coefficients": dict(zip(RFM_INPUTS, (float(v) for v in regression.coef_[0]), strict=True)),
        "intercept": float(regression.intercept_[0]),
    }
    return Scores(ranking=probability, probability=probability, fitted=fitted)


def warm_up_btyd() -> None:
    """Import pymc-marketing ahead of `buy_till_you_die` (e.g. on another thread); nothing when it is missing, which
    `buy_till_you_die` reports."""
    from models.btyd import BTYDUnavailable, import_clv

    with contextlib.suppress(BTYDUnavailable):
        import_clv()


def buy_till_you_die(test_rows: pd.DataFrame, horizon_days: int, seed: int, kind: str = "bg_nbd") -> Scores:
    """BG/NBD or Pareto/NBD (`kind`); raises models.btyd.BTYDUnavailable when the optional extra is not installed."""
    from models.btyd import btyd_churn_scores, fit_btyd

    model = fit_btyd(test_rows, seed, kind)
    scores = btyd_churn_scores(model, test_rows, float(horizon_days))
    return Scores(
        ranking=-scores["expected_purchases"].to_numpy(dtype=np.float64),
        probability=scores["p_no_purchase"].to_numpy(dtype=np.float64),
        fitted={name: float(value) for name, value in model.fit_summary().items()},
    )
