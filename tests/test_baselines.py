"""The RFM logistic baseline at full strength: its textbook form pinned against a plain scikit-learn fit on the
same rows, and its regularisation chosen on the validation customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from features.build import LABEL
from models.baselines import RFM_C_GRID, choose_rfm_regularisation, rfm_inputs, rfm_logistic


def rows(n: int, seed: int) -> pd.DataFrame:
    """Feature rows whose churn falls with frequency and rises with recency, as in a shop."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(3.0, n)
    tenure = rng.uniform(30.0, 700.0, n)
    recency = np.where(orders > 0, rng.uniform(0.0, 1.0, n) * tenure, np.nan)
    value = np.where(orders > 0, rng.lognormal(3.0, 1.0, n), np.nan)
    logit = 0.8 * np.log1p(np.nan_to_num(recency, nan=tenure)) - 0.9 * np.log1p(orders) - 2.0
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "days_since_last_order": recency,
            "days_since_first_order": tenure,
            "orders_total": orders,
            "value_mean": value,
            LABEL: (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8"),
        }
    )


def test_rfm_inputs_by_hand() -> None:
    # 3 orders of mean value 20, the last 9 days and the first 99 days before the cutoff; a customer whose only
    # order was cancelled (recency taken from the first order, no orders, no value).
    table = pd.DataFrame(
        {
            "days_since_last_order": [9.0, np.nan],
            "days_since_first_order": [99.0, 40.0],
            "orders_total": [3, 0],
            "value_mean": [20.0, np.nan],
        }
    )
    expected = np.log1p([[9.0, 3.0, 20.0, 99.0], [40.0, 0.0, 0.0, 40.0]])
    assert rfm_inputs(table) == pytest.approx(expected)


def test_rfm_logistic_is_a_plain_scikit_learn_fit_on_the_same_rows() -> None:
    train, validation, test = rows(3000, 0), rows(800, 1), rows(500, 2)
    scores = rfm_logistic(train, validation, test)
    c = scores.fitted["C"]
    fitting = pd.concat([train, validation])
    x = np.log1p(
        np.column_stack(
            [
                fitting["days_since_last_order"].fillna(fitting["days_since_first_order"]),
                fitting["orders_total"],
                fitting["value_mean"].fillna(0.0),
                fitting["days_since_first_order"],
            ]
        )
    )
    scaler = StandardScaler().fit(x)
    plain = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x), fitting[LABEL])
    test_x = np.log1p(
        np.column_stack(
            [
                test["days_since_last_order"].fillna(test["days_since_first_order"]),
                test["orders_total"],
                test["value_mean"].fillna(0.0),
                test["days_since_first_order"],
            ]
        )
    )
    expected = plain.predict_proba(scaler.transform(test_x))[:, 1]
    assert scores.probability == pytest.approx(expected, rel=1e-9)
    assert np.array_equal(scores.ranking, scores.probability)
    # The signs a shop expects: recency raises churn, frequency lowers it.
    assert scores.fitted["coefficients"]["recency"] > 0 > scores.fitted["coefficients"]["frequency"]


def test_regularisation_is_the_lowest_validation_log_loss() -> None:
    train, validation = rows(3000, 0), rows(800, 1)
    chosen, losses = choose_rfm_regularisation(train, validation)
    assert set(losses) == {str(c) for c in RFM_C_GRID}
    assert losses[str(chosen)] == min(losses.values())
    # One entry by hand: C = 0.01 fitted on the training rows, scored on the validation rows.
    scaler = StandardScaler().fit(rfm_inputs(train))
    fit = LogisticRegression(C=0.01, max_iter=1000).fit(scaler.transform(rfm_inputs(train)), train[LABEL])
    by_hand = log_loss(validation[LABEL], fit.predict_proba(scaler.transform(rfm_inputs(validation)))[:, 1])
    assert losses["0.01"] == pytest.approx(by_hand, rel=1e-9)
