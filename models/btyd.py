"""The buy-till-you-die baselines: BG/NBD (Fader, Hardie and Lee, 2005) and Pareto/NBD (Schmittlein, Morrison and
Colombo, 1987) from pymc-marketing, an optional extra.

Both have the same two processes (Poisson purchases while alive, a dropout that ends them); BG/NBD lets customers
drop out only right after a purchase, which gives a likelihood without Pareto/NBD's Gaussian hypergeometric terms
(cheap and stable to fit by MAP), Pareto/NBD at any time (slower to fit: it is fitted on a smaller sample, which is
as good for four parameters). Each is a baseline at full strength; the best of them counts. A model uses no
labels: it is fitted on the history before one cutoff (repeat purchases, recency and age of every customer) and
asked how many purchases each customer makes in the next horizon. Churn is ranked by those expected purchases, not
by P(alive), which is 1 for every one-time buyer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("customer_id", "orders_total", "days_since_first_order", "days_since_last_order")
# Weeks keep the fitted rates and ages in a well-scaled range for the optimiser.
DAYS_PER_UNIT = 7.0
# MAP on a sample is as good as on everyone for four parameters, and bounds the fit time on large shops.
MAX_FIT_CUSTOMERS = 100_000
# Pareto/NBD's likelihood costs tens of times more per customer.
MAX_FIT_CUSTOMERS_PARETO = 20_000
KINDS = ("bg_nbd", "pareto_nbd")


class BTYDUnavailable(RuntimeError, ImportError):
    """pymc-marketing is not installed. Also an ImportError, so a caller that skips optional imports skips this."""

    def __init__(self) -> None:
        super().__init__(
            "the buy-till-you-die baseline needs pymc-marketing, which is not installed: "
            "pip install 'churn-pipeline[btyd]' (the dev extra that `make install` installs includes it)"
        )


def _clv() -> Any:
    try:
        from pymc_marketing import clv
    except ImportError as error:
        raise BTYDUnavailable() from error
    return clv


def check_history(history: pd.DataFrame) -> None:
    """Raise ValueError unless `history` is one cutoff's feature rows that BG/NBD's inputs can be derived from."""
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ValueError(f"the history lacks the column(s) {missing}")
    if history["customer_id"].duplicated().any():
        raise ValueError("the history has more than one row for a customer; pass the rows of one cutoff")
    orders = history["orders_total"].to_numpy(dtype=np.float64, na_value=np.nan)
    first = history["days_since_first_order"].to_numpy(dtype=np.float64, na_value=np.nan)
    last = history["days_since_last_order"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not (orders >= 0).all():
        raise ValueError("orders_total must be a count >= 0 on every row")
    if not (first >= 0).all():
        raise ValueError("days_since_first_order must be >= 0 on every row")
    if not np.array_equal(np.isnan(last), orders == 0):
        raise ValueError("days_since_last_order must be missing exactly where orders_total is 0")
    if (last < 0).any() or (last > first).any():
        raise ValueError("days_since_last_order must lie between 0 and days_since_first_order")


def rfm_summary(history: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD's inputs from the feature table's rows at one cutoff, in weeks, one row per input row in order:
    frequency (repeat purchases), recency (first to last purchase, 0 without a repeat) and T (first purchase to the
    cutoff). `customer_id` is the row's position, so the customers' own ids need no particular type."""
    orders = history["orders_total"].to_numpy(dtype=np.float64)
    first = history["days_since_first_order"].to_numpy(dtype=np.float64) / DAYS_PER_UNIT
    last = history["days_since_last_order"].to_numpy(dtype=np.float64, na_value=np.nan) / DAYS_PER_UNIT
    # A customer's clock starts at the first non-cancelled order. The table dates only the first order placed,
    # cancelled or not, except for a single purchase, which is also the last one.
    age = np.where(orders == 1, last, first)
    frequency = np.maximum(orders - 1.0, 0.0)
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(history)),
            "frequency": frequency,
            "recency": np.where(frequency > 0, age - last, 0.0),
            "T": age,
        }
    )


def fit_bg_nbd(history: pd.DataFrame, seed: int) -> Any:
    """A pymc-marketing BetaGeoModel fitted by MAP on one cutoff's rows (time in weeks), on a seeded sample of at
    most MAX_FIT_CUSTOMERS. Raises BTYDUnavailable without pymc-marketing."""
    return fit_btyd(history, seed, "bg_nbd")


def fit_pareto_nbd(history: pd.DataFrame, seed: int) -> Any:
    """A pymc-marketing ParetoNBDModel fitted by MAP on one cutoff's rows (time in weeks), on a seeded sample of at
    most MAX_FIT_CUSTOMERS_PARETO. Raises BTYDUnavailable without pymc-marketing."""
    return fit_btyd(history, seed, "pareto_nbd")


def fit_btyd(history: pd.DataFrame, seed: int, kind: str) -> Any:
    """BG/NBD or Pareto/NBD (`kind`) fitted by MAP on one cutoff's rows."""
    if kind not in KINDS:
        raise ValueError(f"unknown buy-till-you-die model {kind!r}; expected one of {KINDS}")
    check_history(history)
    clv = _clv()
    # A customer whose every order was cancelled has not made the first purchase the likelihood starts from.
    summary = rfm_summary(history)[history["orders_total"].to_numpy() > 0]
    if summary.empty:
        raise ValueError(f"no customer in the history has a non-cancelled order to fit {kind} on")
    limit = MAX_FIT_CUSTOMERS if kind == "bg_nbd" else MAX_FIT_CUSTOMERS_PARETO
    if len(summary) > limit:
        summary = summary.sample(limit, random_state=seed)
    model_class = clv.BetaGeoModel if kind == "bg_nbd" else clv.ParetoNBDModel
    model = model_class(data=summary.assign(customer_id=np.arange(len(summary))))
    model.fit(method="map", progressbar=False)
    log.info("%s fitted by MAP on %d customers (weeks): %s", kind, len(summary), model.fit_summary().to_dict())
    return model


def btyd_churn_scores(model: Any, history: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per row of `history` (same index): `expected_purchases` in [cutoff, cutoff + horizon) and `p_no_purchase`,
    the probability of none, from a model of `fit_btyd` (BG/NBD or Pareto/NBD)."""
    check_history(history)
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    summary = rfm_summary(history)
    future = horizon_days / DAYS_PER_UNIT
    ids = summary["customer_id"].to_numpy()
    expected = _draws(model.expected_purchases(data=summary, future_t=future), ids)
    if "a" not in model.fit_result:  # Pareto/NBD: the conditional probability of no purchase (Fader and Hardie)
        none = _draws(model.expected_purchase_probability(data=summary, n_purchases=0, future_t=future), ids)
        return pd.DataFrame(
            {"expected_purchases": expected.mean(axis=(0, 1)), "p_no_purchase": none.mean(axis=(0, 1))},
            index=history.index,
        )
    alive = _draws(model.expected_probability_alive(data=summary), ids)
    # pymc-marketing's expected_probability_no_purchase (0.19) leaves out that a one-time buyer cannot have dropped
    # out (P(alive) = 1), which overstates their churn (tests/test_btyd.py shows it on simulated data). The closed
    # form instead: dead, or alive and no purchase at the posterior rate, which is Gamma(r + x, alpha + T).
    r, alpha = (model.fit_result[name].to_numpy()[..., np.newaxis] for name in ("r", "alpha"))
    frequency, age = summary["frequency"].to_numpy(), summary["T"].to_numpy()
    silent_if_alive = ((alpha + age) / (alpha + age + future)) ** (r + frequency)
    no_purchase = 1.0 - alive + alive * silent_if_alive
    return pd.DataFrame(
        {"expected_purchases": expected.mean(axis=(0, 1)), "p_no_purchase": no_purchase.mean(axis=(0, 1))},
        index=history.index,
    )


def _draws(prediction: Any, ids: np.ndarray) -> np.ndarray:
    """A pymc-marketing prediction as a (chain, draw, customer) array, customers in the order of `ids`."""
    return prediction.sel(customer_id=ids).transpose("chain", "draw", "customer_id").to_numpy()
