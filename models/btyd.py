"""The buy-till-you-die baseline: BG/NBD (Fader, Hardie and Lee, 2005) from pymc-marketing, an optional extra.

BG/NBD rather than Pareto/NBD: the same two processes (Poisson purchases while alive, a dropout that ends them) with
a likelihood that is cheap to fit by MAP, and the standard first baseline in the CLV literature. It uses no
labels: it is fitted on the history before one cutoff (frequency, recency and age of every customer) and asked
how many purchases each customer makes in the next horizon. Churn is ranked by those expected purchases, not by
P(alive), which is 1 for every one-time buyer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Weeks keep the fitted rates and ages in a well-scaled range for the optimiser.
DAYS_PER_UNIT = 7.0
# MAP on a sample is as good as on everyone for six parameters, and bounds the fit time on large shops.
MAX_FIT_CUSTOMERS = 100_000
_MIN_AGE = 1e-3


class BTYDUnavailable(ImportError):
    """pymc-marketing is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the buy-till-you-die baseline needs pymc-marketing: pip install 'churn-pipeline[btyd]' "
            "(it is part of the dev extra that `make install` installs)"
        )


def _clv() -> Any:
    try:
        from pymc_marketing import clv
    except ImportError as error:
        raise BTYDUnavailable() from error
    return clv


def rfm_summary(history: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD's inputs from the feature table's rows at one cutoff, in weeks: frequency (repeat purchases),
    recency (first to last purchase) and T (first purchase to the cutoff); one row per input row, in order."""
    age = np.maximum(history["days_since_first_order"].to_numpy(dtype=np.float64) / DAYS_PER_UNIT, _MIN_AGE)
    orders = history["orders_total"].to_numpy(dtype=np.float64)
    since_last = history["days_since_last_order"].to_numpy(dtype=np.float64, na_value=np.nan) / DAYS_PER_UNIT
    recency = np.where(orders > 0, np.clip(age - np.nan_to_num(since_last, nan=age), 0.0, age), 0.0)
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(history)),
            "frequency": np.maximum(orders - 1.0, 0.0),
            "recency": recency,
            "T": age,
        }
    )


def fit_bg_nbd(history: pd.DataFrame, seed: int) -> Any:
    """A BG/NBD model fitted by MAP on (a seeded sample of at most MAX_FIT_CUSTOMERS of) one cutoff's rows."""
    clv = _clv()
    summary = rfm_summary(history)
    if len(summary) > MAX_FIT_CUSTOMERS:
        summary = summary.sample(MAX_FIT_CUSTOMERS, random_state=seed)
    model = clv.BetaGeoModel(data=summary.reset_index(drop=True).assign(customer_id=lambda s: np.arange(len(s))))
    model.fit(method="map", progressbar=False)
    log.info("BG/NBD fitted on %d customers: %s", len(summary), model.fit_summary().round(4).to_dict())
    return model


def btyd_churn_scores(model: Any, history: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per row of `history`: expected purchases in [cutoff, cutoff + horizon) and the probability of none."""
    summary = rfm_summary(history)
    future = horizon_days / DAYS_PER_UNIT
    expected = model.expected_purchases(data=summary, future_t=future)
    no_purchase = model.expected_probability_no_purchase(t=future, data=summary)
    return pd.DataFrame(
        {
            "expected_purchases": np.asarray(expected).reshape(-1),
            "p_no_purchase": np.clip(np.asarray(no_purchase).reshape(-1), 0.0, 1.0),
        },
        index=history.index,
    )
