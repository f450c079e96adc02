"""The observable oracle of the synthetic shop: the best churn probability any model can compute from what a
customer's history shows at a cutoff, under the generator's own mechanism and priors.

The latent oracle (`synthetic.true_churn_probability`) knows each customer's purchase rate and whether they have
already dropped out; no model can. This one knows only what the tables show before the cutoff `T` (every event by
its own timestamp, as features see it) and computes, per customer,

    P(no qualifying order in [T, T + h) | history before T)

by Bayes' rule over the generator's latent quantities:

- purchase rate `lambda` (gamma across customers, capped): the orders after the first are a seasonal Poisson process,
  so the history's likelihood in `lambda` is `lambda^(n-1) exp(-lambda S(t_1, t_n))` (`S` integrates the seasonal
  multiplier). Its integral against the capped gamma prior is exact (regularised incomplete gamma functions plus the
  prior's point mass at the cap): `lambda` is integrated out analytically, not sampled.
- base dropout `d` (beta across customers): stratified importance sampling from its beta prior, `DROPOUT_DRAWS`
  draws seeded by the generator's seed. The customer survived every order but the last, each with probability
  `1 - d m_k` times a factor of that order's experiences that does not depend on `d` (the effects combine as
  independent causes), where `m_k` is the order's invoice and loyalty multiplier: so earlier orders' experiences
  cancel out of the posterior and only their multipliers count.
- the last order before `T` decides the rest: the customer either dropped out right after it (probability
  `1 - (1 - d m_n) G`), or stayed and placed no order since (`(1 - d m_n) G exp(-lambda S(t_n, T))`). `G` is the
  expected stay factor of what went wrong on that order given what is known at `T` (`_experience_stay_factor`):
  a posterior over what really happened (late, wrong item, damaged, out of stock, cancelled by the customer or the
  payment, nothing) and whether a complaint was resolved within `recovery_days`, from the cancellation, delivery,
  return, review and ticket seen by `T` or not yet seen (the generator's rates and delay distributions give each
  observation's probability).
- loyalty: the customer joins the programme after their `L`-th order (`L` geometric, or never) some exponential
  delay later, and only if they stayed. A join seen after the last order proves the customer stayed; no join yet
  is weak evidence either way (`_loyalty_evidence`).
- the label window: an alive customer's orders in it form a Poisson process; an order counts unless its
  cancellation is known by `T + h` (`label_window` thins the process by that probability). An order cancelled
  inside the window may be followed by a dropout, which ends the customer's chance to come back: competing risks.

Approximations (each small; the report says so too):
- for the dropout after an order cancelled inside the window, the rate of such dropouts is taken in a fixed ratio to
  the orders that count (exact when the share of cancellations known by the window's end is the same throughout
  it; it falls in the window's last days), at the customer's posterior mean base dropout and with the last order's
  payment and loyalty (those dropouts move a customer's churn probability by about one point at most, so the
  approximation's error is a fraction of that);
- the timing densities of an observation are used where they tell kinds apart (a ticket's opening after the moment
  its problem was noticed), and ignored where they are the same for every consistent kind;
- a ticket's opening density for a cancellation that is not yet known at `T` is taken as zero (the ticket follows
  the cancellation);
- the customer's preferred channel and payment (habits) are not inferred: each order's channel and payment are
  read from the order itself, which is all the mechanism uses.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from pipelines.sources.synthetic import (
    OMEGA,
    REVIEW_SCORE_PROBABILITIES,
    SECONDS_PER_DAY,
    SyntheticShopParams,
    epoch_days,
)

log = logging.getLogger(__name__)

# Stratified draws (benchmarks/README.md, "Evaluate at 1M (session 10)"): against 1,000 draws, 250 moved no
# customer's probability by more than 8e-4 (mean 1.3e-4) and the ROC-AUC by under 2e-6, on the default shop's
# 32,032 test customers and the 1M shop's 641,904; 1,000 were within 2.4e-5 of 4,000's. A quarter of the draws is
# about a quarter of the oracle's sampling (a sixth at 1M).
DROPOUT_DRAWS = 250
# Customers per block of the (customers x draws) matrices: ~10 arrays of 8,000 x DROPOUT_DRAWS doubles per block.
CUSTOMERS_PER_BLOCK = 8000
# Blocks computed at once (each holds ~10 of those matrices): one per core, two at most.
ORACLE_THREADS = max(1, min(2, len(os.sched_getaffinity(0))))
# Literals of the generator (pipelines/sources/synthetic.py, not params: keep them in step): the ticket resolution
# time is lognormal with this sigma, ticket opening delays exponential with this mean (days); late deliveries arrive
# promised + geometric(LATE_GEOMETRIC_P) + uniform(0, 1) days, on-time ones at uniform(ON_TIME_EARLIEST, 1) of the
# promised days; returns uniform(RETURN_DAYS) after delivery, reviews exponential(REVIEW_DELAY_MEAN_DAYS) after it;
# loyalty joins after the L-th order with L + 1 geometric(0.5).
RESOLUTION_SIGMA = 1.0
TICKET_DELAY_MEAN_DAYS = 1.0
LATE_GEOMETRIC_P = 0.3
ON_TIME_EARLIEST = 0.3
RETURN_DAYS = (2.0, 14.0)
REVIEW_DELAY_MEAN_DAYS = 4.0
LOYALTY_ORDER_P = 0.5
# The columns the oracle reads, per contract table: reading only these keeps a 1M-customer shop's tables small.
COLUMNS_READ = {
    "orders": (
        "order_id", "customer_id", "ordered_at", "channel", "payment_method", "cancel_reason", "cancelled_at",
        "delivered_at",
    ),
    "customers": ("customer_id", "signed_up_at", "loyalty_joined_at"),
    "tickets": ("order_id", "opened_at", "resolved_at", "reason"),
    "returns": ("order_id", "returned_at", "reason"),
    "reviews": ("order_id", "reviewed_at", "review_score"),
}  # fmt: skip
# A late delivery arrives at least a day after the promise, an on-time one by it.
LATE_MARGIN_DAYS = 0.5


@dataclass(frozen=True)
class Kind:
    """What may really have happened on an order (the generator draws a cancellation first, then, for the orders
    that go ahead, lateness and an item problem independently)."""

    name: str
    late: bool = False
    wrong_item: bool = False
    damaged: bool = False
    cancel: str | None = None  # out_of_stock, customer, payment

    @property
    def item_problem(self) -> bool:
        return self.wrong_item or self.damaged

    @property
    def ticket_kind(self) -> str:
        """The key of `ticket_rate` (later kinds win, as in the generator)."""
        if self.cancel == "out_of_stock":
            return "out_of_stock"
        if self.damaged:
            return "damaged"
        if self.wrong_item:
            return "wrong_item"
        return "late_delivery" if self.late else "none"

    @property
    def ticket_reason(self) -> str:
        if self.wrong_item:
            return "wrong_item"
        if self.damaged:
            return "damaged"
        if self.late:
            return "late_delivery"
        return "refund" if self.cancel == "out_of_stock" else "other"

    @property
    def review_group(self) -> str:
        if self.item_problem:
            return "item_problem"
        return "late_delivery" if self.late else "none"


KINDS = (
    Kind("fine"),
    Kind("late", late=True),
    Kind("wrong_item", wrong_item=True),
    Kind("wrong_item_late", late=True, wrong_item=True),
    Kind("damaged", damaged=True),
    Kind("damaged_late", late=True, damaged=True),
    Kind("out_of_stock", cancel="out_of_stock"),
    Kind("customer_cancel", cancel="customer"),
    Kind("payment_failure", cancel="payment"),
)


def _flags(attribute: str) -> np.ndarray:
    return np.array([bool(getattr(kind, attribute)) for kind in KINDS])


CANCELLED = np.array([kind.cancel is not None for kind in KINDS])
LATE = _flags("late")
ITEM_PROBLEM = _flags("item_problem")


@dataclass(frozen=True)
class History:
    """Per customer (one row each, in the order of `customer_id`), what the oracle needs from the tables before T."""

    customer_id: np.ndarray
    orders: np.ndarray  # n >= 1
    first_order_day: np.ndarray  # epoch days
    last_order_day: np.ndarray
    earlier_multipliers: np.ndarray  # (customers, 4) counts of orders before the last by multiplier class
    last_multiplier_class: np.ndarray  # 0..3
    stay_factor: np.ndarray  # G of the last order
    loyalty_alive: np.ndarray  # A: P(loyalty seen | stayed after the last order), up to a common factor
    loyalty_dead: np.ndarray  # D: the same given a dropout right after it


def multiplier_values(params: SyntheticShopParams) -> np.ndarray:
    """Dropout multipliers of the classes (card/other, invoice) x (not member, member), indexed 2*invoice + member."""
    invoice, loyalty = params.invoice_dropout_multiplier, params.loyalty_dropout_multiplier
    return np.array([1.0, loyalty, invoice, invoice * loyalty])


def observable_churn_probability(
    tables: dict[str, pd.DataFrame],
    customer_ids: pd.Series | np.ndarray,
    cutoff: pd.Timestamp,
    horizon_days: float,
    params: SyntheticShopParams,
    draws: int = DROPOUT_DRAWS,
) -> pd.Series:
    """P(churned at `cutoff`) for `customer_ids` from what the tables (the contract's orders, customers, tickets,
    returns, reviews) show before the cutoff, indexed by customer_id. Every customer must have an order before it
    (the population's rule); raises ValueError otherwise."""
    history = observed_history(tables, pd.Index(customer_ids), cutoff, params)
    window = label_window(cutoff, horizon_days, params)
    probability = _churn_probability(history, _rate_prior(history, cutoff, params), window, params, draws)
    return pd.Series(probability, index=pd.Index(history.customer_id, name="customer_id"), name="p_churn")


def _cumulative_exposure(epoch_day: np.ndarray, params: SyntheticShopParams) -> np.ndarray:
    """F(t) with S(a, b) = F(b) - F(a): the integral of the seasonal multiplier from a fixed origin."""
    amplitude = params.seasonality_amplitude
    return epoch_day + amplitude / OMEGA * np.sin(OMEGA * (epoch_day - params.seasonality_peak_day))


def _epoch_days(values: pd.Series) -> np.ndarray:
    """Naive timestamps → epoch days (NaT → NaN)."""
    stamps = pd.to_datetime(values)
    nanoseconds = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
    return np.where(stamps.isna().to_numpy(), np.nan, nanoseconds / 1e9 / SECONDS_PER_DAY)


def _known_before(values: pd.Series, cutoff_day: float) -> np.ndarray:
    """Epoch days of events before the cutoff; NaN for events at or after it (not known yet) or missing."""
    days = _epoch_days(values)
    return np.where(days < cutoff_day, days, np.nan)


def observed_history(
    tables: dict[str, pd.DataFrame], customer_ids: pd.Index, cutoff: pd.Timestamp, params: SyntheticShopParams
) -> History:
    """Everything the oracle reads from the tables, each event only if it happened before `cutoff`."""
    cutoff_day = epoch_days(cutoff)
    orders, codes, ids = orders_before(tables["orders"], customer_ids, cutoff_day)
    # By customer, then day, ties in table order: np.lexsort is stable, so this is the order a stable sort_values by
    # the two columns gives, without pandas factorising the days first. The ids and order times are not read again.
    by_customer_and_day = np.lexsort((orders["day"].to_numpy(), codes))
    orders = orders.drop(columns=["customer_id", "ordered_at"]).assign(customer=codes).take(by_customer_and_day)
    found = pd.Index(ids)
    missing = customer_ids.difference(found)
    if len(missing):
        raise ValueError(f"{len(missing)} customers have no order before {cutoff.date()}, e.g. {missing[0]}")
    customers = tables["customers"].drop_duplicates("customer_id").set_index("customer_id")
    joined_day = _known_before(customers["loyalty_joined_at"], cutoff_day)
    signup_day = _epoch_days(customers["signed_up_at"])
    customers = pd.DataFrame({"joined": joined_day, "signup": signup_day}, index=customers.index).reindex(found)
    customer = orders["customer"].to_numpy()
    member = (customers["joined"].to_numpy()[customer] <= orders["day"].to_numpy()).astype(int)  # NaN: False
    invoice = (orders["payment_method"].astype(str) == "invoice").to_numpy().astype(int)
    by_customer = orders.groupby("customer", sort=True)
    orders = orders.assign(multiplier_class=2 * invoice + member, number=by_customer.cumcount().to_numpy() + 1)
    last = orders.groupby("customer", sort=True).tail(1)
    first_day = by_customer["day"].min()
    earlier = orders[orders["number"].to_numpy() < last["number"].to_numpy()[customer]]
    counts = orders_per_class(earlier["customer"].to_numpy(), earlier["multiplier_class"], len(last))
    alive, dead = _loyalty_evidence(orders, customers, cutoff_day, params)
    stay = _experience_stay_factor(last.reset_index(drop=True), tables, cutoff_day, params)
    order = found.get_indexer(customer_ids)
    return History(
        customer_id=found.to_numpy()[order],
        orders=last["number"].to_numpy()[order],
        first_order_day=first_day.to_numpy()[order],
        last_order_day=last["day"].to_numpy()[order],
        earlier_multipliers=counts[order],
        last_multiplier_class=last["multiplier_class"].to_numpy()[order],
        stay_factor=stay[order],
        loyalty_alive=alive[order],
        loyalty_dead=dead[order],
    )


def orders_before(
    orders: pd.DataFrame, customer_ids: pd.Index, cutoff_day: float
) -> tuple[pd.DataFrame, np.ndarray, pd.Index | np.ndarray]:
    """The orders of `customer_ids` placed before the cutoff (epoch days), with their day as `day`, in table order;
    each one's customer as an integer code in id order, and the ids of the codes (`pd.factorize(..., sort=True)` of
    the kept orders' ids). Grouping by the code gives the same groups in the same order as by the ids, without
    hashing millions of strings at every step.

    The ids are factorised once over every order and whether a customer is wanted is decided once per customer
    (not once per order, a string hash each); the codes are then those of the kept customers alone."""
    ordered = _epoch_days(orders["ordered_at"])
    every_code, every_id = pd.factorize(orders["customer_id"], sort=True)
    wanted = pd.Index(every_id).isin(customer_ids)
    keep = (ordered < cutoff_day) & (every_code >= 0) & wanted[every_code]  # code -1: a missing id
    kept_code = every_code[keep]
    present = np.zeros(len(every_id), dtype=bool)
    present[kept_code] = True
    # Sorted ids stay sorted in any subset: a kept id's rank among the kept ones is its code.
    codes = (np.cumsum(present) - 1)[kept_code]
    return orders[keep].assign(day=ordered[keep]), codes, every_id[present]


def orders_per_class(customer: np.ndarray, multiplier_class: pd.Series, customers: int) -> np.ndarray:
    """(customers, 4) counts of orders per customer (row position) and multiplier class, as floats."""
    cells = customer * 4 + multiplier_class.to_numpy(dtype=np.int64)
    return np.bincount(cells, minlength=customers * 4).reshape(customers, 4).astype(float)


def _loyalty_evidence(
    orders: pd.DataFrame, customers: pd.DataFrame, cutoff_day: float, params: SyntheticShopParams
) -> tuple[np.ndarray, np.ndarray]:
    """(A, D): the probability of what the customers table shows about loyalty by the cutoff, given that the
    customer stayed after their last order (A) or dropped out right after it (D), up to a factor common to both.
    `orders` are sorted by `customer` (the customer's row in `customers`) and day.

    L (orders before joining) is -1 (never) with probability 1 - share, else j >= 0 with share * 0.5^(j+1); a
    customer joins at sign-up (j = 0) or an exponential delay after their j-th order, if they stayed after it."""
    share, delay = params.loyalty_share, params.loyalty_join_delay_mean_days
    joined = customers["joined"].to_numpy()
    per_order_joined = joined[orders["customer"].to_numpy()]
    number = orders["number"].to_numpy()
    prior = share * LOYALTY_ORDER_P ** (number + 1)
    waited = np.where(np.isnan(per_order_joined), cutoff_day, per_order_joined) - orders["day"].to_numpy()
    term = np.where(
        np.isnan(per_order_joined),
        prior * np.exp(-waited / delay),  # not joined yet: the delay outlasts the cutoff
        np.where(waited >= 0, prior * np.exp(-waited / delay) / delay, 0.0),  # joined then: the delay's density
    )
    frame = pd.DataFrame({"customer": orders["customer"].to_numpy(), "term": term})
    last_term = frame.groupby("customer", sort=True)["term"].last().to_numpy()
    earlier = frame.groupby("customer", sort=True)["term"].sum().to_numpy() - last_term
    n = orders.groupby("customer", sort=True)["number"].max().to_numpy()
    later = share * LOYALTY_ORDER_P ** (n + 1)  # P(L > n) = P(L = n): both still possible
    not_joined = np.isnan(joined)
    at_signup = ~not_joined & (np.abs(joined - customers["signup"].to_numpy()) * SECONDS_PER_DAY < 1.0)
    alive = np.where(not_joined, (1 - share) + earlier + later + last_term, earlier + last_term)
    dead = np.where(not_joined, (1 - share) + earlier + later + later, earlier)
    # A join at sign-up says nothing about later dropout.
    alive = np.where(at_signup, 1.0, alive)
    dead = np.where(at_signup, 1.0, dead)
    inconsistent = (alive <= 0) & (dead <= 0)
    if inconsistent.any():  # e.g. a join before any order but not at sign-up: the mechanism cannot produce it
        log.warning("%d customers' loyalty join fits no order; their loyalty is ignored", int(inconsistent.sum()))
    return np.where(inconsistent, 1.0, alive), np.where(inconsistent, 1.0, dead)


def _labels(values: pd.Series) -> np.ndarray:
    """Category labels as plain strings, "" where missing."""
    return np.asarray(values.astype("string").fillna("").to_numpy(dtype=str))


def _by_order(table: pd.DataFrame | None, order_ids: pd.Series, columns: list[str]) -> pd.DataFrame:
    """`columns` of `table` (one row per order, the first if several) aligned with `order_ids`; NaN where none."""
    if table is None or table.empty:
        return pd.DataFrame({column: np.full(len(order_ids), np.nan) for column in columns})
    first = table.drop_duplicates("order_id").set_index("order_id")
    return first.reindex(order_ids.to_numpy())[columns].reset_index(drop=True)


def _experience_stay_factor(
    last: pd.DataFrame, tables: dict[str, pd.DataFrame], cutoff_day: float, params: SyntheticShopParams
) -> np.ndarray:
    """G = E[product over the last order's bad experiences of (1 - effect * recovery) | what is known at the
    cutoff]: the share of the customer's base stay probability that the last order leaves."""
    n = len(last)
    order_day = last["day"].to_numpy()
    age = cutoff_day - order_day
    channel = last["channel"].astype(str)
    known_channel = channel.isin(list(params.channel_shares))
    mean_late = sum(params.late_rate_by_channel[c] * s for c, s in params.channel_shares.items()) / sum(
        params.channel_shares.values()
    )
    late_rate = np.where(known_channel, channel.map(params.late_rate_by_channel).astype(float), mean_late)
    mean_promise = float(np.mean(list(params.promised_days_by_channel.values())))
    promised_days = np.where(known_channel, channel.map(params.promised_days_by_channel).astype(float), mean_promise)
    promised_day = order_day + promised_days  # from the channel: an export's empty promise can be a later snapshot

    cancel_rates = _cancel_rates(params)
    goes_ahead = 1 - sum(cancel_rates.values())
    item_rate = {"wrong_item": params.wrong_item_rate, "damaged": params.damaged_rate}
    prior = np.empty((n, len(KINDS)))
    for k, kind in enumerate(KINDS):
        if kind.cancel is not None:
            prior[:, k] = cancel_rates[kind.cancel]
            continue
        item = (
            item_rate["wrong_item"] if kind.wrong_item
            else item_rate["damaged"] if kind.damaged
            else 1 - item_rate["wrong_item"] - item_rate["damaged"]
        )  # fmt: skip
        prior[:, k] = goes_ahead * item * np.where(kind.late, late_rate, 1 - late_rate)

    # Cancellation
    cancelled_day = _known_before(last["cancelled_at"], cutoff_day)
    cancel_reason = np.where(np.isnan(cancelled_day), "", _labels(last["cancel_reason"]))
    cancel_known = ~np.isnan(cancelled_day)
    likelihood = np.ones((n, len(KINDS)))
    for k, kind in enumerate(KINDS):
        if kind.cancel is None:
            likelihood[:, k] *= ~cancel_known
        else:
            pending = np.exp(-age / params.cancel_delay_mean_days[kind.cancel])
            likelihood[:, k] *= np.where(cancel_known, cancel_reason == kind.cancel, pending)

    # Delivery
    delivered_day = _known_before(last["delivered_at"], cutoff_day)
    delivered = ~np.isnan(delivered_day)
    seen_late = delivered_day - promised_day > LATE_MARGIN_DAYS
    on_time_pending = np.clip((1 - age / promised_days) / (1 - ON_TIME_EARLIEST), 0.0, 1.0)
    late_pending = _late_delivery_pending(cutoff_day - promised_day)
    for k, kind in enumerate(KINDS):
        if kind.cancel is not None:
            likelihood[:, k] *= ~delivered
        else:
            consistent = seen_late == kind.late
            likelihood[:, k] *= np.where(delivered, consistent, late_pending if kind.late else on_time_pending)

    # Returns (only of delivered orders)
    returns = _by_order(tables.get("returns"), last["order_id"], ["returned_at", "reason"])
    returned_day = _known_before(returns["returned_at"], cutoff_day)
    returned = ~np.isnan(returned_day)
    return_reason = _labels(returns["reason"])
    low, high = RETURN_DAYS
    return_due = np.where(delivered, np.clip((cutoff_day - delivered_day - low) / (high - low), 0.0, 1.0), 0.0)
    for k, kind in enumerate(KINDS):
        if kind.cancel is not None:
            likelihood[:, k] *= ~returned
            continue
        if kind.item_problem:
            reason = "wrong_item" if kind.wrong_item else "damaged"
            seen = (return_reason == reason) * params.bad_item_return_rate
            unseen = 1 - params.bad_item_return_rate * return_due
        else:
            seen = np.isin(return_reason, ["wrong_item", "damaged"], invert=True) * params.customer_return_rate
            unseen = 1 - params.customer_return_rate * return_due
        likelihood[:, k] *= np.where(returned, seen, unseen)

    # Reviews (of orders that went ahead, some days after delivery)
    reviews = _by_order(tables.get("reviews"), last["order_id"], ["reviewed_at", "review_score"])
    reviewed_day = _known_before(reviews["reviewed_at"], cutoff_day)
    reviewed = ~np.isnan(reviewed_day)
    score = np.nan_to_num(reviews["review_score"].to_numpy(dtype=float), nan=1.0).astype(int).clip(1, 5)
    review_due = np.where(delivered, 1 - np.exp(-(cutoff_day - delivered_day) / REVIEW_DELAY_MEAN_DAYS), 0.0)
    for k, kind in enumerate(KINDS):
        if kind.cancel is not None:
            likelihood[:, k] *= ~reviewed
            continue
        bad = kind.late or kind.item_problem
        rate = params.review_rate_after_bad_experience if bad else params.review_rate
        score_probability = np.asarray(REVIEW_SCORE_PROBABILITIES[kind.review_group])[score - 1]
        likelihood[:, k] *= np.where(reviewed, rate * score_probability, 1 - rate * review_due)

    # Tickets: opened an exponential delay after the problem was noticed; resolution decides recovery.
    tickets = _by_order(tables.get("tickets"), last["order_id"], ["opened_at", "resolved_at", "reason"])
    opened_day = _known_before(tickets["opened_at"], cutoff_day)
    opened = ~np.isnan(opened_day)
    ticket_reason = _labels(tickets["reason"])
    resolved_day = _known_before(tickets["resolved_at"], cutoff_day)
    recovered_if_ticket = _recovery_given_ticket(opened_day, resolved_day, cutoff_day, params)
    recovery_share = (1 - params.ticket_unresolved_share) * _resolution_cdf(params.recovery_days, params)
    recovery = np.empty((n, len(KINDS)))
    for k, kind in enumerate(KINDS):
        noticed = (
            np.where(cancel_known, cancelled_day, np.nan) if kind.cancel is not None
            else promised_day if kind.late and not kind.item_problem
            else np.where(delivered, delivered_day, np.nan)
        )  # fmt: skip
        noticed = np.where(noticed < cutoff_day, noticed, np.nan)
        rate = params.ticket_rate[kind.ticket_kind]
        opened_by_cutoff = np.where(
            np.isnan(noticed), 0.0, 1 - np.exp(-(cutoff_day - noticed) / TICKET_DELAY_MEAN_DAYS)
        )
        wait = np.maximum(opened_day - noticed, 0.0)
        density = np.where(np.isnan(noticed), 0.0, np.exp(-wait / TICKET_DELAY_MEAN_DAYS) / TICKET_DELAY_MEAN_DAYS)
        seen = (ticket_reason == kind.ticket_reason) * rate * density
        likelihood[:, k] *= np.where(opened, seen, 1 - rate * opened_by_cutoff)
        later_ticket = rate * (1 - opened_by_cutoff) / (1 - rate * opened_by_cutoff)
        recovery[:, k] = np.where(opened, recovered_if_ticket, later_ticket * recovery_share)

    weights = prior * likelihood
    total = weights.sum(axis=1, keepdims=True)
    unexplained = total[:, 0] <= 0
    if unexplained.any():  # an observation the mechanism cannot produce (e.g. rounding at an edge): fall back
        log.warning("%d last orders fit no kind of experience; their prior is used", int(unexplained.sum()))
    weights = np.where(unexplained[:, None], prior, weights)
    weights = weights / weights.sum(axis=1, keepdims=True)
    stay_recovered, stay_unrecovered = _kind_stay_factors(params)
    return np.asarray((weights * (recovery * stay_recovered + (1 - recovery) * stay_unrecovered)).sum(axis=1))


def _late_delivery_pending(days_past_promise: np.ndarray) -> np.ndarray:
    """P(a late delivery, promised + G + U days with G ~ geometric(p) >= 1 and U ~ uniform(0, 1), arrives after
    `days_past_promise` past the promise)."""
    x = np.maximum(days_past_promise, 0.0)
    whole = np.floor(x)
    fraction = x - whole
    stay = 1 - LATE_GEOMETRIC_P
    beyond = stay**whole + LATE_GEOMETRIC_P * stay ** np.maximum(whole - 1, 0) * (1 - fraction)
    return np.where(x < 1, 1.0, np.minimum(beyond, 1.0))


def _resolution_cdf(days: np.ndarray | float, params: SyntheticShopParams) -> np.ndarray:
    """P(a resolved ticket takes at most `days`): lognormal around the median."""
    days = np.maximum(np.asarray(days, dtype=float), 1e-12)
    return np.asarray(stats.norm.cdf(np.log(days / params.ticket_resolution_median_days) / RESOLUTION_SIGMA))


def _recovery_given_ticket(
    opened_day: np.ndarray, resolved_day: np.ndarray, cutoff_day: float, params: SyntheticShopParams
) -> np.ndarray:
    """P(the ticket is resolved within recovery_days | what is known of it at the cutoff)."""
    limit = params.recovery_days
    resolved = ~np.isnan(resolved_day)
    waited = np.where(np.isnan(opened_day), 0.0, cutoff_day - opened_day)
    unresolved = params.ticket_unresolved_share
    still_possible = (1 - unresolved) * np.maximum(_resolution_cdf(limit, params) - _resolution_cdf(waited, params), 0)
    open_now = unresolved + (1 - unresolved) * (1 - _resolution_cdf(waited, params))
    pending = np.where(waited < limit, still_possible / np.maximum(open_now, 1e-300), 0.0)
    return np.where(resolved, (resolved_day - opened_day) <= limit, pending)


def _kind_stay_factors(params: SyntheticShopParams) -> tuple[np.ndarray, np.ndarray]:
    """Per kind, the product of (1 - effect * recovery) over its bad experiences, with and without recovery."""
    effects = {
        "late": params.late_delivery_effect,
        "wrong_item": params.wrong_item_effect,
        "damaged": params.damaged_effect,
    }
    result = []
    for recovery in (1 - params.recovery_effect, 1.0):
        factors = []
        for kind in KINDS:
            stay = 1.0
            for flag, effect in effects.items():
                stay *= 1 - effect * recovery if getattr(kind, flag) else 1.0
            if kind.cancel == "out_of_stock":
                stay *= 1 - params.out_of_stock_effect * recovery
            factors.append(stay)
        result.append(np.array(factors))
    return result[0], result[1]


@dataclass(frozen=True)
class Window:
    """What the label window holds for an alive customer, per unit of purchase rate: `exposure` is the seasonal
    exposure of the orders that count (not known cancelled by its end), `cancelled` the same of the orders known
    cancelled by then, by who cancelled."""

    exposure: float
    cancelled: dict[str, float]


def label_window(cutoff: pd.Timestamp, horizon_days: float, params: SyntheticShopParams) -> Window:
    """Integrals over [T, T + h) of the seasonal multiplier times the probability that an order placed then is
    known cancelled by T + h (per kind), and of the rest: the orders that count under the label's rule (days)."""
    days = np.linspace(0.0, horizon_days, 20_001)
    multiplier = 1 + params.seasonality_amplitude * np.cos(
        OMEGA * (epoch_days(cutoff) + days - params.seasonality_peak_day)
    )
    cancelled = {
        kind: float(
            np.trapezoid(
                multiplier * rate * (1 - np.exp(-(horizon_days - days) / params.cancel_delay_mean_days[kind])), days
            )
        )
        for kind, rate in _cancel_rates(params).items()
    }
    return Window(float(np.trapezoid(multiplier, days)) - sum(cancelled.values()), cancelled)


def label_exposure(cutoff: pd.Timestamp, horizon_days: float, params: SyntheticShopParams) -> float:
    """The seasonal exposure of the orders that count in the label window (`label_window`'s `exposure`)."""
    return label_window(cutoff, horizon_days, params).exposure


def _cancel_rates(params: SyntheticShopParams) -> dict[str, float]:
    return {
        "out_of_stock": params.out_of_stock_rate,
        "customer": params.customer_cancel_rate,
        "payment": params.payment_failure_rate,
    }


def _window_dropout_ratio(
    window: Window, base_dropout: np.ndarray, multiplier: np.ndarray, params: SyntheticShopParams
) -> np.ndarray:
    """rho: the rate of dropouts right after an order cancelled inside the window (which end the customer's chance
    to come back) over the rate of orders that count. The cancelled order's payment and loyalty are taken as the
    last order's; an out-of-stock cancellation's effect is recovered with the generator's ticket and resolution
    odds."""
    recovered = (
        params.ticket_rate["out_of_stock"]
        * (1 - params.ticket_unresolved_share)
        * float(_resolution_cdf(params.recovery_days, params))
    )
    out_of_stock_stay = 1 - params.out_of_stock_effect * (1 - params.recovery_effect * recovered)
    stay = 1 - base_dropout * multiplier
    dropouts = window.cancelled["out_of_stock"] * (1 - stay * out_of_stock_stay) + (
        window.cancelled["customer"] + window.cancelled["payment"]
    ) * (1 - stay)
    return np.asarray(dropouts / window.exposure)


@dataclass(frozen=True)
class RatePrior:
    """The capped gamma prior of the purchase rate (per day) and each customer's exposures since their first order:
    `span` = S(t_1, t_n), `silence` = S(t_n, T)."""

    shape: float
    rate: float
    cap: float
    gaps: np.ndarray  # n - 1
    span: np.ndarray
    silence: np.ndarray

    def log_integral(self, rows: slice, extra: np.ndarray | float) -> np.ndarray:
        """log of the integral over the prior of lambda^(n-1) exp(-lambda (span + extra)): exact, as the gamma part
        below the cap (regularised incomplete gamma) plus the prior's point mass at the cap."""
        gaps, span = self.gaps[rows], self.span[rows]
        posterior_shape = self.shape + gaps
        posterior_rate = self.rate + span + extra
        with np.errstate(divide="ignore"):  # no mass at an unreachable cap
            below_cap = (
                self.shape * np.log(self.rate) - special.gammaln(self.shape) + special.gammaln(posterior_shape)
                - posterior_shape * np.log(posterior_rate)
                + np.log(special.gammainc(posterior_shape, posterior_rate * self.cap))
            )  # fmt: skip
            log_mass_at_cap = np.log(special.gammaincc(self.shape, self.rate * self.cap))
        at_cap = log_mass_at_cap + gaps * np.log(self.cap) - self.cap * (span + extra)
        return np.asarray(np.logaddexp(below_cap, at_cap))


def _rate_prior(history: History, cutoff: pd.Timestamp, params: SyntheticShopParams) -> RatePrior:
    first = _cumulative_exposure(history.first_order_day, params)
    last = _cumulative_exposure(history.last_order_day, params)
    at_cutoff = _cumulative_exposure(np.array([epoch_days(cutoff)]), params)[0]
    return RatePrior(
        shape=params.purchase_rate_shape,
        rate=params.purchase_rate_shape / (params.purchase_rate_mean_per_year / 365.25),
        cap=params.purchase_rate_max_per_year / 365.25,
        gaps=history.orders - 1.0,
        span=last - first,
        silence=at_cutoff - last,
    )


def dropout_draws(params: SyntheticShopParams, draws: int) -> np.ndarray:
    """Stratified draws of the base dropout from its beta prior, seeded by the generator's seed."""
    a = params.dropout_mean * params.dropout_concentration
    b = (1 - params.dropout_mean) * params.dropout_concentration
    uniform = (np.arange(draws) + np.random.default_rng([params.seed, 15]).random(draws)) / draws
    return np.asarray(stats.beta.ppf(uniform, a, b))


def _churn_probability(
    history: History, prior: RatePrior, window: Window, params: SyntheticShopParams, draws: int
) -> np.ndarray:
    """Importance sampling over the base dropout (draws from its prior, so the weights are the likelihood), with the
    purchase rate integrated out exactly for each draw's branch: dropped out after the last order, or alive and
    silent since. An alive customer churns with probability (rho + exp(-(1 + rho) lambda E)) / (1 + rho), E the
    label window's exposure and rho `_window_dropout_ratio` at the customer's posterior mean dropout (competing
    risks: an order that counts, or a dropout after a cancelled one, whichever comes first).

    Blocks of customers are independent: they run on up to ORACLE_THREADS threads (numpy and scipy's ufuncs release
    the GIL), each block computed exactly as alone, so the result does not depend on the number of threads."""
    d = dropout_draws(params, draws)
    multipliers = multiplier_values(params)
    with np.errstate(divide="ignore"):
        log_alive_evidence = np.log(history.loyalty_alive * history.stay_factor)
        log_dead_evidence = np.log(history.loyalty_dead)
    # A customer's last order falls in one of four multiplier classes: its stay probabilities per draw (and their
    # logs) are looked up, not recomputed per customer.
    stay_base_by_class = 1 - np.outer(multipliers, d)
    block = _DropoutBlock(
        history=history,
        prior=prior,
        window=window,
        params=params,
        d=d,
        multipliers=multipliers,
        log_stay_by_class=np.log1p(-np.outer(multipliers, d)),
        stay_base_by_class=stay_base_by_class,
        log_stay_base_by_class=np.log(stay_base_by_class),
        log_alive_evidence=log_alive_evidence,
        log_dead_evidence=log_dead_evidence,
    )
    blocks = [
        slice(start, start + CUSTOMERS_PER_BLOCK) for start in range(0, len(history.customer_id), CUSTOMERS_PER_BLOCK)
    ]
    result = np.empty(len(history.customer_id))
    with ThreadPoolExecutor(max_workers=ORACLE_THREADS) as pool:
        for rows, probability in zip(blocks, pool.map(block.churn_probability, blocks), strict=True):
            result[rows] = probability
    return result


@dataclass(frozen=True)
class _DropoutBlock:
    """What every block of `_churn_probability` shares; `churn_probability` computes one block."""

    history: History
    prior: RatePrior
    window: Window
    params: SyntheticShopParams
    d: np.ndarray  # (draws,)
    multipliers: np.ndarray  # (4,)
    log_stay_by_class: np.ndarray  # (4, draws): log1p(-m d), the earlier orders' survival
    stay_base_by_class: np.ndarray  # (4, draws): 1 - m d
    log_stay_base_by_class: np.ndarray  # (4, draws): log(1 - m d), the last order's survival
    log_alive_evidence: np.ndarray
    log_dead_evidence: np.ndarray

    def churn_probability(self, rows: slice) -> np.ndarray:
        # Each (customers x draws) step is written into a buffer already there, in the same order of operations as
        # the expressions in the comments: fresh 64 MB arrays cost page faults, about as much as the arithmetic.
        history, prior = self.history, self.prior
        earlier = history.earlier_multipliers[rows] @ self.log_stay_by_class  # (customers, draws)
        last_class = history.last_multiplier_class[rows]
        last_multiplier = self.multipliers[last_class]
        silence = prior.silence[rows]
        # dead = earlier + (log D + log(1 - stay_base * G) + log I(0))
        dead = self.stay_base_by_class[last_class]  # a copy: the lookup gathers rows
        dead *= history.stay_factor[rows, None]
        np.subtract(1, dead, out=dead)
        with np.errstate(divide="ignore"):
            np.log(dead, out=dead)
        np.add(self.log_dead_evidence[rows, None], dead, out=dead)
        dead += prior.log_integral(rows, 0.0)[:, None]
        np.add(earlier, dead, out=dead)
        # alive_base = earlier + log A + log(stay_base); log_weights = logaddexp(dead, alive_base + log I(silence))
        alive_base = earlier
        alive_base += self.log_alive_evidence[rows, None]
        alive_base += self.log_stay_base_by_class[last_class]
        log_weights = alive_base + prior.log_integral(rows, silence)[:, None]
        np.logaddexp(dead, log_weights, out=log_weights)
        evidence = log_sum_exp_rows(log_weights)
        # posterior = exp(log_weights - evidence)
        log_weights -= evidence[:, None]
        posterior = np.exp(log_weights, out=log_weights)
        rho = _window_dropout_ratio(self.window, posterior @ self.d, last_multiplier, self.params)
        with np.errstate(divide="ignore"):  # rho = 0 without cancellations
            log_rho = np.log(rho)
        never_back = np.logaddexp(
            log_rho + prior.log_integral(rows, silence),
            prior.log_integral(rows, silence + (1 + rho) * self.window.exposure),
        ) - np.log1p(rho)
        # churned = logsumexp(logaddexp(dead, alive_base + never_back))
        alive_base += never_back[:, None]
        churned = log_sum_exp_rows(np.logaddexp(dead, alive_base, out=alive_base))
        return np.asarray(np.exp(churned - evidence))


def log_sum_exp_rows(values: np.ndarray) -> np.ndarray:
    """`scipy.special.logsumexp(values, axis=1)` of a real 2-D array, the same floats in fewer passes over it (scipy
    1.15+'s algorithm: the row's maxima are taken out of the sum, the rest summed after the shift, then
    log1p(sum / count) + log(count) + max; a row where that is not finite, e.g. every draw impossible, is
    log(sum(exp(row))) as scipy falls back to). scipy's general version copies the array several times and
    exponentiates it twice; here that is most of the oracle's time."""
    largest = values.max(axis=1, keepdims=True)
    at_largest = values == largest
    count = at_largest.sum(axis=1, keepdims=True, dtype=values.dtype)
    shifted = np.where(at_largest, -np.inf, values)
    with np.errstate(invalid="ignore"):  # -inf - -inf in a row of impossible draws: handled below
        shifted -= largest
    np.exp(shifted, out=shifted)
    total = shifted.sum(axis=1, keepdims=True)
    total = np.where(total == 0, total, total / count)
    result = (np.log1p(total) + np.log(count) + largest)[:, 0]
    not_finite = ~np.isfinite(result)
    if not_finite.any():
        with np.errstate(divide="ignore", over="ignore"):
            result[not_finite] = np.log(np.exp(values[not_finite]).sum(axis=1))
    return np.asarray(result)
