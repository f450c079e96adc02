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
import pyarrow as pa
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


@dataclass(frozen=True)
class Summaries:
    """BG/NBD's inputs of many customers, in weeks: frequency x (repeat purchases), recency t_x and age T, one
    array each. Terms that depend on x alone are computed once per run of equal consecutive x (`by_x`): a sample
    sorted by value has a few dozen runs among 20,000 customers, and each customer's value is the same bytes as
    computing the term per customer."""

    x: np.ndarray
    t_x: np.ndarray
    age: np.ndarray
    run_x: np.ndarray  # x of each run of equal consecutive values
    run_lengths: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> Summaries:
        starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1]))) if len(x) else np.zeros(0, np.int64)
        return cls(x, t_x, age, x[starts], np.diff(np.append(starts, len(x))))

    def by_x(self, per_run: np.ndarray) -> np.ndarray:
        """One value per customer from one per run of x (computed from `run_x`)."""
        return np.repeat(per_run, self.run_lengths)


def check_history(history: pd.DataFrame) -> None:
    """Raise ValueError unless `history` is one cutoff's feature rows that BG/NBD's inputs can be derived from."""
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ValueError(f"the history lacks the column(s) {missing}")
    if history["customer_id"].duplicated().any():
        raise ValueError("the history has more than one row for a customer; pass the rows of one cutoff")
    check_history_values(*history_arrays(history))


def history_arrays(history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """orders_total, days_since_first_order and days_since_last_order as float64 arrays, missing values as NaN."""
    orders, first, last = (
        history[column].to_numpy(dtype=np.float64, na_value=np.nan) for column in HISTORY_COLUMNS[1:]
    )
    return orders, first, last


def check_history_values(orders: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
    """Raise ValueError unless the history's columns (`history_arrays`) are counts and ages BG/NBD can read."""
    if not (orders >= 0).all():
        raise ValueError("orders_total must be a count >= 0 on every row")
    if not (first >= 0).all():
        raise ValueError("days_since_first_order must be >= 0 on every row")
    if not np.array_equal(np.isnan(last), orders == 0):
        raise ValueError("days_since_last_order must be missing exactly where orders_total is 0")
    if (last < 0).any() or (last > first).any():
        raise ValueError("days_since_last_order must lie between 0 and days_since_first_order")


def rfm_values(orders: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's frequency (repeat purchases), recency (first to last purchase, 0 without a repeat) and T (first
    purchase to the cutoff), in weeks, from the history's columns (`history_arrays`), one value per row."""
    first, last = first / DAYS_PER_UNIT, last / DAYS_PER_UNIT
    # A customer's clock starts at the first non-cancelled order. The table dates only the first order placed,
    # cancelled or not, except for a single purchase, which is also the last one.
    age = np.where(orders == 1, last, first)
    frequency = np.maximum(orders - 1.0, 0.0)
    return frequency, np.where(frequency > 0, age - last, 0.0), age


def rfm_summary(history: pd.DataFrame) -> pd.DataFrame:
    """`rfm_values` of the feature table's rows at one cutoff, one row per input row in order, as the columns
    frequency, recency and T. `customer_id` is the row's position, so the customers' own ids need no particular
    type."""
    frequency, recency, age = rfm_values(*history_arrays(history))
    return pd.DataFrame({"customer_id": np.arange(len(history)), "frequency": frequency, "recency": recency, "T": age})


@dataclass(frozen=True)
class LikelihoodTerms:
    """The per-customer terms that the log-likelihood and its gradient share at one parameter point."""

    rx: np.ndarray  # r + x
    alpha_age: np.ndarray  # alpha + T
    alpha_t_x: np.ndarray  # alpha + t_x
    log_alpha_age: np.ndarray
    log_alpha_t_x: np.ndarray
    rx_log_alpha_age: np.ndarray
    rx_log_alpha_t_x: np.ndarray
    run_betaln_alive: np.ndarray  # betaln(a, b + x), per run of x
    run_betaln_dropped: np.ndarray  # betaln(a + 1, b + x - 1), per run of x

    @classmethod
    def at(cls, params: BGNBDParams, summaries: Summaries) -> LikelihoodTerms:
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        rx, alpha_age, alpha_t_x = r + summaries.x, alpha + summaries.age, alpha + summaries.t_x
        log_alpha_age, log_alpha_t_x = np.log(alpha_age), np.log(alpha_t_x)
        with np.errstate(divide="ignore", invalid="ignore"):
            run_betaln_dropped = betaln(a + 1.0, b + summaries.run_x - 1.0)
        return cls(
            rx=rx,
            alpha_age=alpha_age,
            alpha_t_x=alpha_t_x,
            log_alpha_age=log_alpha_age,
            log_alpha_t_x=log_alpha_t_x,
            rx_log_alpha_age=rx * log_alpha_age,
            rx_log_alpha_t_x=rx * log_alpha_t_x,
            run_betaln_alive=betaln(a, b + summaries.run_x),
            run_betaln_dropped=run_betaln_dropped,
        )


def log_likelihood(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood of (frequency x, recency t_x, age T) (Fader, Hardie and Lee, eq. 6)."""
    summaries = Summaries.of(x, t_x, age)
    return summaries_log_likelihood(params, summaries, LikelihoodTerms.at(params, summaries))


def summaries_log_likelihood(params: BGNBDParams, summaries: Summaries, terms: LikelihoodTerms) -> np.ndarray:
    """`log_likelihood` from the shared terms."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = summaries.by_x(gammaln(r + summaries.run_x) - gammaln(r) + r * np.log(alpha))
    alive = summaries.by_x(terms.run_betaln_alive - betaln(a, b)) - terms.rx_log_alpha_age
    # Dropped out right after the last repeat purchase (only possible after one).
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = summaries.by_x(terms.run_betaln_dropped - betaln(a, b)) - terms.rx_log_alpha_t_x
    repeat = summaries.x > 0
    return common + np.where(repeat, np.logaddexp(alive, np.where(repeat, dropped, -np.inf)), alive)


def log_likelihood_gradient(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The gradient of the summed log-likelihood with respect to (log r, log alpha, log a, log b)."""
    summaries = Summaries.of(x, t_x, age)
    return summaries_log_likelihood_gradient(params, summaries, LikelihoodTerms.at(params, summaries))


def summaries_log_likelihood_gradient(params: BGNBDParams, summaries: Summaries, terms: LikelihoodTerms) -> np.ndarray:
    """`log_likelihood_gradient` from the shared terms."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    run_x, by_x = summaries.run_x, summaries.by_x
    repeat, run_repeat = summaries.x > 0, run_x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alive = by_x(terms.run_betaln_alive) - terms.rx_log_alpha_age
        dropped = by_x(terms.run_betaln_dropped) - terms.rx_log_alpha_t_x
        # the share of the likelihood from "alive at T" (1 without a repeat purchase)
        w = np.where(repeat, expit(alive - dropped), 1.0)
        not_w = 1 - w
        d_r = (
            by_x(digamma(r + run_x) - digamma(r) + np.log(alpha))
            - w * terms.log_alpha_age
            - not_w * terms.log_alpha_t_x
        )
        d_alpha = r / alpha - terms.rx * (w / terms.alpha_age + not_w / terms.alpha_t_x)
        d_norm_a, d_norm_b = digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)
        run_digamma_abx = digamma(a + b + run_x)
        d_a = w * by_x(digamma(a) - run_digamma_abx) + not_w * by_x(
            np.where(run_repeat, digamma(a + 1.0) - run_digamma_abx, 0.0)
        )
        d_b = w * by_x(digamma(b + run_x) - run_digamma_abx) + not_w * by_x(
            np.where(run_repeat, digamma(b + run_x - 1.0) - run_digamma_abx, 0.0)
        )
    n = len(summaries.x)
    per_param = np.array([d_r.sum(), d_alpha.sum(), d_a.sum() - n * d_norm_a, d_b.sum() - n * d_norm_b])
    return per_param * np.array([r, alpha, a, b])


def fit_bg_nbd(summary: pd.DataFrame) -> BGNBDParams:
    """BG/NBD fitted by maximum likelihood on `rfm_summary` rows (customers with a non-cancelled order): see
    `fit_bg_nbd_values`."""
    return fit_bg_nbd_values(*(summary[name].to_numpy(dtype=np.float64) for name in ("frequency", "recency", "T")))


def fit_sample(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> Summaries:
    """The summaries the fit reads: sorted by value, and sampled systematically above MAX_FIT_CUSTOMERS, so that
    they depend only on the multiset of summaries."""
    x, t_x, age = sorted_by_value(x, t_x, age)
    if len(x) > MAX_FIT_CUSTOMERS:
        rows = np.linspace(0, len(x) - 1, MAX_FIT_CUSTOMERS).round().astype(np.int64)
        x, t_x, age = x[rows], t_x[rows], age[rows]
    return Summaries.of(x, t_x, age)


def sorted_by_value(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The summaries in lexicographic order of (x, t_x, T). Only values are kept, not which customer has them, so
    equal summaries may come in any order. Repeat purchases are counts: grouped by a stable radix sort of x, each
    group sorted as complex numbers t_x + iT (numpy orders those by real, then imaginary part), one sort pass
    instead of lexsort's three."""
    if len(x) == 0 or not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= np.iinfo(np.uint16).max):
        order = np.lexsort((age, t_x, x))
        return x[order], t_x[order], age[order]
    counts = x.astype(np.uint16)
    order = np.argsort(counts, kind="stable")
    pairs = np.empty(len(x), np.complex128)
    pairs.real, pairs.imag = t_x[order], age[order]
    sorted_counts = counts[order]
    ends = np.append(np.flatnonzero(sorted_counts[1:] != sorted_counts[:-1]) + 1, len(x))
    for start, end in zip(np.append(0, ends[:-1]), ends, strict=True):
        pairs[start:end].sort()
    return x[order], pairs.real.copy(), pairs.imag.copy()


def fit_bg_nbd_values(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> BGNBDParams:
    """BG/NBD fitted by maximum likelihood on the summaries (frequency x, recency t_x, age T; customers with a
    non-cancelled order) of `fit_sample`."""
    if len(x) == 0:
        raise ValueError("no customer has a non-cancelled order to fit BG/NBD on")
    summaries = fit_sample(x, t_x, age)
    n = len(summaries.x)

    def negative_mean(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = BGNBDParams(*np.exp(log_params))
        terms = LikelihoodTerms.at(params, summaries)
        value = -float(np.mean(summaries_log_likelihood(params, summaries, terms)))
        return value, -summaries_log_likelihood_gradient(params, summaries, terms) / n

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


def silent_if_alive(params: BGNBDParams, x: np.ndarray, age: np.ndarray, future: float) -> np.ndarray:
    """P(no purchase in (T, T + future] | alive): silent at the posterior rate, Gamma(r + x, alpha + T)."""
    return ((params.alpha + age) / (params.alpha + age + future)) ** (params.r + x)


def expected_if_alive(
    params: BGNBDParams, x: np.ndarray, age: np.ndarray, future: float, silent: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + future] | alive, x, T] (Fader, Hardie and Lee, eq. 10, without P(alive)); `silent`
    is `silent_if_alive` of the same customers."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # The formula has a removable singularity at a = 1, where a fit stays when no customer has a repeat purchase
    # (the likelihood then does not depend on a and b, and the optimiser starts at 1): evaluated just beside it,
    # the value is off by about 1e-6 relative.
    a = a if abs(a - 1.0) > A_NEAR_ONE else 1.0 + A_NEAR_ONE
    z = future / (alpha + age + future)
    # (1 - z)^(a - 1) 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z), and where it overflows (inf times 0: a high and
    # z near 1), the same before Euler's transformation, ((alpha + T) / (alpha + T + t))^(r + x)
    # 2F1(r + x, b + x; a + b + x - 1; z), which overflows elsewhere (b or x high). The second is evaluated only
    # where needed: the Gauss series are the costliest step per customer.
    with np.errstate(all="ignore"):
        silent_part = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        overflow = ~np.isfinite(silent_part)
        if overflow.any():
            x_o = x[overflow]
            silent_part[overflow] = silent[overflow] * hyp2f1(r + x_o, b + x_o, a + b + x_o - 1.0, z[overflow])
    if not np.isfinite(silent_part).all():
        raise RuntimeError(
            f"BG/NBD's expected purchases overflow at {params} for {int((~np.isfinite(silent_part)).sum())} customers"
        )
    return (a + b + x - 1.0) / (a - 1.0) * (1.0 - silent_part)


def expected_purchases(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, future: float
) -> np.ndarray:
    """E[purchases in (T, T + future] | x, t_x, T] (Fader, Hardie and Lee, eq. 10)."""
    silent = silent_if_alive(params, x, age, future)
    return expected_if_alive(params, x, age, future, silent) * probability_alive(params, x, t_x, age)


def probability_no_purchase(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, future: float
) -> np.ndarray:
    """P(no purchase in (T, T + future]): dead, or alive and silent at the posterior rate, Gamma(r + x, alpha + T)."""
    alive = probability_alive(params, x, t_x, age)
    return 1.0 - alive + alive * silent_if_alive(params, x, age, future)


def btyd_values(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, future: float
) -> dict[str, np.ndarray]:
    """BTYD_COLUMNS of the customers (`probability_alive`, `expected_purchases`, `probability_no_purchase`), their
    common terms computed once."""
    alive = probability_alive(params, x, t_x, age)
    silent = silent_if_alive(params, x, age, future)
    return {
        "btyd_p_alive": alive,
        "btyd_expected_purchases": expected_if_alive(params, x, age, future, silent) * alive,
        "btyd_p_no_purchase": 1.0 - alive + alive * silent,
    }


def check_horizon(horizon_days: float) -> float:
    """The horizon in BG/NBD's time unit; ValueError unless it is > 0."""
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    return horizon_days / DAYS_PER_UNIT


def btyd_quantities(history: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """The BTYD features (BTYD_COLUMNS) of every row of `history` (one cutoff's HISTORY_COLUMNS, same index), BG/NBD
    fitted on its rows that have a non-cancelled order."""
    check_history(history)
    orders, first, last = history_arrays(history)
    every_row = np.ones(len(orders), dtype=bool)
    return pd.DataFrame(fitted_values(orders, first, last, horizon_days, every_row), index=history.index)


def fitted_values(
    orders: np.ndarray, first: np.ndarray, last: np.ndarray, horizon_days: float, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """`btyd_values` of the `rows` (a mask) of a checked history (`history_arrays`), BG/NBD fitted on every row with
    a non-cancelled order."""
    future = check_horizon(horizon_days)
    x, t_x, age = rfm_values(orders, first, last)
    has_order = orders > 0
    params = fit_bg_nbd_values(x[has_order], t_x[has_order], age[has_order])
    return btyd_values(params, x[rows], t_x[rows], age[rows], future)


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
    fit sees the same summaries (whole seconds between timestamps) in an order of its own. The history is read as
    Arrow columns (numbers straight to numpy, the ids never leave Arrow), and the quantities are computed for the
    population only; the fit reads every customer with a non-cancelled order."""
    history = btyd_history(summary, cutoff, active_window_days).to_pyarrow()
    active = history.column("active")
    if active.null_count:
        raise ValueError("the history has customers without a last order placed; pass `order_summary` rows")
    in_population = active.to_numpy()
    orders, first, last = (_float_column(history, column) for column in HISTORY_COLUMNS[1:])
    if not in_population.any() or not (orders > 0).any():
        return ibis.memtable(pa.table({"customer_id": pa.array([], pa.string()), **_no_values()}))
    # No uniqueness check here, unlike `check_history`: `order_summary` aggregates by customer_id, so the engine
    # gives one row per customer, and the features' invariant checks refuse a repeated customer in the rows.
    check_history_values(orders, first, last)
    values = fitted_values(orders, first, last, horizon_days, in_population)
    ids = history.column("customer_id").filter(pa.array(in_population))
    return ibis.memtable(pa.table({"customer_id": ids, **values}))


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, nulls as NaN."""
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


def _no_values() -> dict[str, pa.Array]:
    return {name: pa.array([], pa.float64()) for name in BTYD_COLUMNS}
