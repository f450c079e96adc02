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

# The inputs are the BTYD feature group's (features/btyd.py), so that baseline and features read the same summaries.
from features.btyd import DAYS_PER_UNIT, check_history, rfm_summary

log = logging.getLogger(__name__)

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


def import_clv() -> Any:
    """pymc-marketing's CLV module; raises BTYDUnavailable without it."""
    try:
        from pymc_marketing import clv
    except ImportError as error:
        raise BTYDUnavailable() from error
    return clv


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
    clv = import_clv()
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
