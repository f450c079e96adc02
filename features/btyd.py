"""What a buy-till-you-die model knows, as features: BG/NBD (Fader, Hardie and Lee, 2005) fitted at each cutoff on
the orders known before it, and its closed-form quantities per customer.

At cutoff t, every customer with a non-cancelled order before t gives BG/NBD its summary (repeat purchases,
recency, age; in weeks); the four parameters are fitted by maximum likelihood on those summaries, and each customer
in the population gets the probability of being alive at t, the expected purchases in [t, t + horizon) and the
probability of none. Nothing after t enters: neither the summaries nor the fit.

The fit is in numpy/scipy rather than pymc-marketing's MAP, for three reasons: the features stage runs it at every
cutoff (pymc-marketing's import and model compilation take seconds each, this fit milliseconds), it must work
without the optional `btyd` extra, and the value must not depend on the engine or the row order (the summaries are
sorted by value before the fit, so reruns, engines and relabelled customers give the same bytes). The likelihood
and the quantities are pymc-marketing's (tests/test_btyd_features.py checks them against its own functions).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from features.common import at, days_between
from features.labels import is_active
from features.spec import FeatureSpec, reading_order_status

HISTORY_COLUMNS = ("customer_id", "orders_total", "days_since_first_order", "days_since_last_order")
# Weeks keep the fitted rates and ages in a well-scaled range for the optimiser.
DAYS_PER_UNIT = 7.0
# Four parameters are pinned down by tens of thousands of customers; a larger shop is fitted on a systematic sample
# of its summaries sorted by value (which depends on no customer id or row order).
MAX_FIT_CUSTOMERS = 20_000
# The optimiser searches log-parameters within these bounds (1e-4 .. 1e4), so that a tiny or degenerate shop still
# gives finite parameters instead of running off to zero or infinity.
LOG_BOUND = float(np.log(1e4))

# How close to 1 the dropout parameter a may be before expected_purchases evaluates it just beside 1.
A_NEAR_ONE = 1e-6

BTYD_SPECS: tuple[FeatureSpec, ...] = reading_order_status((
    FeatureSpec("btyd_p_alive", "btyd", "float64", "probability", "all history",
                "BG/NBD's probability that the customer is still alive at the cutoff, the model fitted by maximum "
                "likelihood at the cutoff on every customer's non-cancelled orders before it."),
    FeatureSpec("btyd_expected_purchases", "btyd", "float64", "orders", "horizon after the cutoff",
                "BG/NBD's expected purchases in [cutoff, cutoff + horizon), from that fit."),
    FeatureSpec("btyd_p_no_purchase", "btyd", "float64", "probability", "horizon after the cutoff",
                "BG/NBD's probability of no purchase in [cutoff, cutoff + horizon): dead, or alive and silent at "
                "the customer's posterior purchase rate."),
))  # fmt: skip
BTYD_COLUMNS = tuple(spec.name for spec in BTYD_SPECS)


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD's parameters, time in weeks: purchase rates ~ Gamma(r, alpha), dropout probabilities ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


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


def log_likelihood(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood of (frequency x, recency t_x, age T) (Fader, Hardie and Lee, eq. 6)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    # Dropped out right after the last repeat purchase (only possible after one).
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = betaln(a + 1.0, b + x - 1.0) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    return common + np.where(x > 0, np.logaddexp(alive, np.where(x > 0, dropped, -np.inf)), alive)


def log_likelihood_gradient(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The gradient of the summed log-likelihood with respect to (log r, log alpha, log a, log b)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alive = betaln(a, b + x) - (r + x) * np.log(alpha + age)
        dropped = betaln(a + 1.0, b + x - 1.0) - (r + x) * np.log(alpha + t_x)
        # the share of the likelihood from "alive at T" (1 without a repeat purchase)
        w = np.where(repeat, expit(alive - dropped), 1.0)
        d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w * np.log(alpha + age) - (1 - w) * np.log(alpha + t_x)
        d_alpha = r / alpha - (r + x) * (w / (alpha + age) + (1 - w) / (alpha + t_x))
        d_norm_a, d_norm_b = digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)
        d_a = w * (digamma(a) - digamma(a + b + x)) + (1 - w) * np.where(
            repeat, digamma(a + 1.0) - digamma(a + b + x), 0.0
        )
        d_b = w * (digamma(b + x) - digamma(a + b + x)) + (1 - w) * np.where(
            repeat, digamma(b + x - 1.0) - digamma(a + b + x), 0.0
        )
    per_param = np.array([d_r.sum(), d_alpha.sum(), d_a.sum() - len(x) * d_norm_a, d_b.sum() - len(x) * d_norm_b])
    return per_param * np.array([r, alpha, a, b])


def fit_bg_nbd(summary: pd.DataFrame) -> BGNBDParams:
    """BG/NBD fitted by maximum likelihood on `rfm_summary` rows (customers with a non-cancelled order). The result
    depends only on the multiset of summaries: they are sorted by value, and sampled systematically above
    MAX_FIT_CUSTOMERS, before the fit."""
    if summary.empty:
        raise ValueError("no customer has a non-cancelled order to fit BG/NBD on")
    values = summary[["frequency", "recency", "T"]].to_numpy(dtype=np.float64)
    values = values[np.lexsort((values[:, 2], values[:, 1], values[:, 0]))]
    if len(values) > MAX_FIT_CUSTOMERS:
        values = values[np.linspace(0, len(values) - 1, MAX_FIT_CUSTOMERS).round().astype(np.int64)]
    x, t_x, age = values[:, 0], values[:, 1], values[:, 2]

    def negative_mean(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = BGNBDParams(*np.exp(log_params))
        value = -float(np.mean(log_likelihood(params, x, t_x, age)))
        return value, -log_likelihood_gradient(params, x, t_x, age) / len(x)

    result = minimize(
        negative_mean,
        np.zeros(4),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"maxiter": 500},
    )
    return BGNBDParams(*(float(value) for value in np.exp(result.x)))


def probability_alive(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T): 1 without a repeat purchase (BG/NBD drops customers only right after one)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds_dead = (
            np.log(params.a)
            - np.log(params.b + x - 1.0)
            + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + t_x))
        )
    return np.where(x > 0, expit(-log_odds_dead), 1.0)


def expected_purchases(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, future: float
) -> np.ndarray:
    """E[purchases in (T, T + future] | x, t_x, T] (Fader, Hardie and Lee, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # The formula has a removable singularity at a = 1, where a fit stays when no customer has a repeat purchase
    # (the likelihood then does not depend on a and b, and the optimiser starts at 1): evaluated just beside it,
    # the value is off by about 1e-6 relative.
    a = a if abs(a - 1.0) > A_NEAR_ONE else 1.0 + A_NEAR_ONE
    z = future / (alpha + age + future)
    # ((alpha + T) / (alpha + T + t))^(r + x) 2F1(r + x, b + x; a + b + x - 1; z), and the same after Euler's
    # transformation, (1 - z)^(a - 1) 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z): each overflows (inf times 0)
    # where the other does not (the first with b or x high, the second with a high and z near 1).
    with np.errstate(all="ignore"):
        transformed = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        direct = ((alpha + age) / (alpha + age + future)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    silent_part = np.where(np.isfinite(transformed), transformed, direct)
    if not np.isfinite(silent_part).all():
        raise RuntimeError(
            f"BG/NBD's expected purchases overflow at {params} for {int((~np.isfinite(silent_part)).sum())} customers"
        )
    if_alive = (a + b + x - 1.0) / (a - 1.0) * (1.0 - silent_part)
    return if_alive * probability_alive(params, x, t_x, age)


def probability_no_purchase(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, future: float
) -> np.ndarray:
    """P(no purchase in (T, T + future]): dead, or alive and silent at the posterior rate, Gamma(r + x, alpha + T)."""
    alive = probability_alive(params, x, t_x, age)
    silent_if_alive = ((params.alpha + age) / (params.alpha + age + future)) ** (params.r + x)
    return 1.0 - alive + alive * silent_if_alive


def btyd_quantities(history: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """The BTYD features (BTYD_COLUMNS) of every row of `history` (one cutoff's HISTORY_COLUMNS, same index), BG/NBD
    fitted on its rows that have a non-cancelled order."""
    check_history(history)
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    summary = rfm_summary(history)
    params = fit_bg_nbd(summary[history["orders_total"].to_numpy() > 0])
    x, t_x, age = (summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    future = horizon_days / DAYS_PER_UNIT
    return pd.DataFrame(
        {
            "btyd_p_alive": probability_alive(params, x, t_x, age),
            "btyd_expected_purchases": expected_purchases(params, x, t_x, age, future),
            "btyd_p_no_purchase": probability_no_purchase(params, x, t_x, age, future),
        },
        index=history.index,
    )


def btyd_history(summary: ibis.Table, cutoff: pd.Timestamp, active_window_days: int) -> ibis.Table:
    """Per customer with an order placed before the cutoff: HISTORY_COLUMNS as the RFM features define them
    (non-cancelled orders, days since the first order placed and the last non-cancelled one) and `active`, whether
    the customer is in the cutoff's population. From `order_summary` at the cutoff, which the features read too."""
    return summary.select(
        "customer_id",
        "orders_total",
        days_since_first_order=days_between(at(cutoff), summary.first_order_at),
        days_since_last_order=days_between(at(cutoff), summary.last_order_at),
        active=is_active(summary.last_placed_at, cutoff, active_window_days),
    )


def btyd_part(summary: ibis.Table, cutoff: pd.Timestamp, horizon_days: int, active_window_days: int) -> ibis.Table:
    """customer_id and BTYD_COLUMNS for the cutoff's population (from `order_summary` at the cutoff), as an
    in-memory table to join to the features.

    The history is computed by the engine and the fit runs here, so DuckDB and Spark give the same values: the
    fit sees the same summaries (whole seconds between timestamps) in an order of its own."""
    history = btyd_history(summary, cutoff, active_window_days).to_pyarrow().to_pandas()
    active = history["active"].to_numpy(dtype=bool)
    if not active.any() or not (history["orders_total"].to_numpy() > 0).any():
        quantities = pd.DataFrame({name: pd.Series([], dtype="float64") for name in BTYD_COLUMNS})
        return ibis.memtable(quantities.assign(customer_id=pd.Series([], dtype="string")))
    quantities = btyd_quantities(history.drop(columns="active"), horizon_days)
    return ibis.memtable(pd.concat([history[["customer_id"]], quantities], axis=1)[active].reset_index(drop=True))
