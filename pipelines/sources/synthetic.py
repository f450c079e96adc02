"""A synthetic Nordic-style online shop with a known churn mechanism (the embedded default data).

The customer process is buy-till-you-die: while alive, a customer orders as a Poisson process with their own rate
(seasonal, the same shape for everyone); right after each order they drop out for good with a probability that
depends on how that order went. A bad experience raises it sharply, a complaint resolved within
`recovery_days` takes most of that back, and paying by invoice or being a loyalty member lowers it mildly.

What an export shows changes after the order: a cancellation comes some hours or days after the order (the
customer's quickly, the shop's out-of-stock call later), and customers join the loyalty programme at sign-up or
after one of their first orders; membership lowers the dropout of the orders placed after joining. The tables show
each state as the export at `end_date` would (a cancellation after it is not there yet), with the time it changed.

Because the fate after an order is sealed when the order is placed, the latent state at any time `t` is simple:
dead (dropped out after an order before `t`) or alive with rate `lambda`. That gives the oracle
`P(no order in [t, t + h)) = 1` if dead, else `exp(-lambda * S(t, t + h))`, where `S` integrates the seasonal
multiplier; `true_churn_probability` computes it from the ground truth written next to the data.

Everything is vectorised over customers: each round of the simulation places the next order of every customer
still active, so the loop runs as many rounds as the most loyal customer has orders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from features.blocks import from_block
from features.contract import TABLES_BY_NAME
from pipelines.sources.synthetic_lines import CATEGORIES, LineDraws

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
EXPERIENCES = ("late_delivery", "wrong_item", "damaged", "out_of_stock")


@dataclass(frozen=True)
class SyntheticShopParams:
    """Knobs of the synthetic shop; the defaults are documented in the README's params section."""

    n_customers: int = 50_000
    seed: int = 42
    start_date: str = "2023-01-01"
    end_date: str = "2026-01-01"
    # Sign-ups per day grow linearly; at the end of the period they are (1 + signup_growth) times the start.
    signup_growth: float = 1.0
    # Purchase rate of an alive customer (orders per year): gamma-distributed across customers.
    purchase_rate_mean_per_year: float = 14.0
    purchase_rate_shape: float = 1.5
    purchase_rate_max_per_year: float = 120.0
    # Seasonal multiplier 1 + amplitude * cos(2 pi (day_of_year - peak_day) / 365.25): busy before Christmas.
    seasonality_amplitude: float = 0.25
    seasonality_peak_day: int = 335
    # Base probability of dropping out right after an order, beta-distributed across customers.
    dropout_mean: float = 0.06
    dropout_concentration: float = 12.0
    # Dropout multipliers: paying by invoice (the order's payment) and loyalty membership keep customers.
    invoice_dropout_multiplier: float = 0.8
    loyalty_dropout_multiplier: float = 0.8
    # Share of customers who join the loyalty programme: at sign-up or after their 1st, 2nd, ... order (each next
    # order half as likely), some days after that order.
    loyalty_share: float = 0.25
    loyalty_join_delay_mean_days: float = 3.0
    # Extra dropout probability a bad experience adds (combined as independent causes).
    late_delivery_effect: float = 0.25
    wrong_item_effect: float = 0.35
    damaged_effect: float = 0.35
    out_of_stock_effect: float = 0.30
    # Share of a bad experience's effect taken back by a complaint resolved within recovery_days.
    recovery_effect: float = 0.6
    recovery_days: float = 2.0
    # How orders go.
    late_rate_by_channel: dict[str, float] = field(default_factory=lambda: {"web": 0.08, "app": 0.06, "store": 0.03})
    promised_days_by_channel: dict[str, float] = field(default_factory=lambda: {"web": 3.0, "app": 3.0, "store": 2.0})
    out_of_stock_rate: float = 0.03
    customer_cancel_rate: float = 0.02
    payment_failure_rate: float = 0.01
    # Mean days from the order to its cancellation (exponential), by who cancelled.
    cancel_delay_mean_days: dict[str, float] = field(
        default_factory=lambda: {"out_of_stock": 1.5, "customer": 0.3, "payment": 0.5}
    )
    wrong_item_rate: float = 0.02
    damaged_rate: float = 0.015
    bad_item_return_rate: float = 0.9
    customer_return_rate: float = 0.08
    review_rate: float = 0.3
    review_rate_after_bad_experience: float = 0.6
    ticket_rate: dict[str, float] = field(
        default_factory=lambda: {
            "none": 0.01,
            "late_delivery": 0.35,
            "wrong_item": 0.75,
            "damaged": 0.75,
            "out_of_stock": 0.15,
        }
    )
    ticket_resolution_median_days: float = 2.0
    ticket_unresolved_share: float = 0.05
    channel_shares: dict[str, float] = field(default_factory=lambda: {"web": 0.55, "app": 0.35, "store": 0.10})
    payment_shares: dict[str, float] = field(default_factory=lambda: {"card": 0.6, "invoice": 0.3, "wallet": 0.1})
    country_shares: dict[str, float] = field(default_factory=lambda: {"SWE": 0.45, "NOR": 0.2, "DNK": 0.2, "FIN": 0.15})
    # Share of preferred channel / payment method used on an order.
    habit_strength: float = 0.85
    order_value_median: float = 55.0
    # Share of extra dirty rows per table, spread over every kind of dirt validation must catch.
    dirty_share: float = 0.005
    # Write what was bought (order lines, pipelines/sources/synthetic_lines.py); false: orders without lines, as an
    # export without them would be (the other tables are the same either way).
    order_lines: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyntheticShopParams:
        return from_block(cls, values, "generate")

    @property
    def horizon_days(self) -> float:
        return (pd.Timestamp(self.end_date) - pd.Timestamp(self.start_date)).total_seconds() / SECONDS_PER_DAY


@dataclass
class SyntheticShop:
    """The generated contract tables plus the ground truth the oracle needs."""

    tables: dict[str, pd.DataFrame]
    customer_truth: pd.DataFrame
    dirt: pd.DataFrame


OMEGA = 2 * np.pi / 365.25


def epoch_days(timestamp: pd.Timestamp) -> float:
    """Days since 1970-01-01: the clock the seasonal cycle runs on (day 0 is 1 January)."""
    return (timestamp - pd.Timestamp("1970-01-01")).total_seconds() / SECONDS_PER_DAY


def seasonal_multiplier(days: np.ndarray, amplitude: float, peak_day: float) -> np.ndarray:
    """Purchase-rate multiplier at `days` since the epoch; its mean over a year is 1."""
    return 1.0 + amplitude * np.cos(OMEGA * (days - peak_day))


def seasonal_exposure(start: pd.Timestamp, days: float, amplitude: float, peak_day: float) -> float:
    """Integral of the seasonal multiplier over `[start, start + days)`, in days."""
    phase0 = OMEGA * (epoch_days(start) - peak_day)
    return float(days + amplitude / OMEGA * (np.sin(phase0 + OMEGA * days) - np.sin(phase0)))


def true_churn_probability(
    customer_truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: float, params: SyntheticShopParams
) -> pd.Series:
    """P(no order in [cutoff, cutoff + horizon)) given each customer's latent state at the cutoff.

    Returns one value per row of `customer_truth`, indexed by customer_id. Customers who had not joined by the
    cutoff get NaN: they are outside any population at that cutoff.
    """
    exposure = seasonal_exposure(cutoff, horizon_days, params.seasonality_amplitude, params.seasonality_peak_day)
    rate = customer_truth["purchase_rate_per_day"].to_numpy()
    dead = (customer_truth["dropped_out_at"] < cutoff).to_numpy()
    joined = (customer_truth["signed_up_at"] < cutoff).to_numpy()
    probability = np.where(dead, 1.0, np.exp(-rate * exposure))
    return pd.Series(np.where(joined, probability, np.nan), index=customer_truth["customer_id"], name="p_churn")


class _Sampler:
    """Vectorised draws shared by the generator's steps. Categories are drawn as codes into `shares`' keys."""

    def __init__(self, params: SyntheticShopParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def choice(self, shares: dict[str, float], size: int) -> np.ndarray:
        probabilities = np.array(list(shares.values()), dtype=float)
        return self.rng.choice(len(shares), size=size, p=probabilities / probabilities.sum()).astype(np.int8)

    def habitual(self, preferred: np.ndarray, shares: dict[str, float]) -> np.ndarray:
        keep = self.rng.random(preferred.size) < self.params.habit_strength
        return np.where(keep, preferred, self.choice(shares, preferred.size))


def _lookup(codes: np.ndarray, names: dict[str, float], mapping: dict[str, float]) -> np.ndarray:
    """Per-category values (e.g. late rate by channel) for an array of category codes."""
    missing = set(names) - set(mapping)
    if missing:
        raise ValueError(f"no value for {sorted(missing)} in {mapping}")
    return np.array([mapping[name] for name in names], dtype=float)[codes]


def _strings(codes: np.ndarray, names: list[str] | dict[str, float]) -> pd.Series:
    """Category codes → Arrow-backed strings (-1 → missing)."""
    dictionary = pa.array(list(names), pa.string())
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return _arrow_strings(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string()))


def _arrow_strings(array: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(array))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Zero-padded identifiers such as O000000042, built in Arrow rather than Python."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return _arrow_strings(pc.binary_join_element_wise(prefix, digits, ""))


def _signup_days(sampler: _Sampler, n: int, span_days: float) -> np.ndarray:
    """Sign-up times with a density growing linearly by `signup_growth` over the period (inverse CDF)."""
    g = sampler.params.signup_growth
    u = sampler.rng.random(n)
    if g == 0:
        return u * span_days
    # CDF(x) = (x + g x^2 / 2) / (1 + g / 2) on [0, 1]
    x = (-1 + np.sqrt(1 + 2 * g * u * (1 + g / 2))) / g
    return x * span_days


def _simulate_customers(sampler: _Sampler) -> pd.DataFrame:
    p = sampler.params
    n = p.n_customers
    rng = sampler.rng
    rate_mean = p.purchase_rate_mean_per_year / 365.25
    rate = rng.gamma(p.purchase_rate_shape, rate_mean / p.purchase_rate_shape, n)
    rate = np.minimum(rate, p.purchase_rate_max_per_year / 365.25)
    a = p.dropout_mean * p.dropout_concentration
    b = (1 - p.dropout_mean) * p.dropout_concentration
    return pd.DataFrame(
        {
            "customer_index": np.arange(n),
            "signed_up_day": _signup_days(sampler, n, p.horizon_days),
            "purchase_rate_per_day": rate,
            "base_dropout": rng.beta(a, b, n),
            # orders before joining the loyalty programme; -1: never joins
            "loyalty_after_orders": np.where(rng.random(n) < p.loyalty_share, rng.geometric(0.5, n) - 1, -1),
            "preferred_channel": sampler.choice(p.channel_shares, n),
            "preferred_payment": sampler.choice(p.payment_shares, n),
            "country": sampler.choice(p.country_shares, n),
            "value_scale": p.order_value_median * rng.lognormal(0.0, 0.5, n),
        }
    )


def _next_order_day(sampler: _Sampler, day: np.ndarray, rate: np.ndarray, start_epoch: float) -> np.ndarray:
    """Next event of a seasonal Poisson process after `day`, by thinning a homogeneous one."""
    p = sampler.params
    peak_rate = rate * (1 + p.seasonality_amplitude)
    result = np.full(day.size, np.inf)
    pending = np.arange(day.size)
    current = day.copy()
    while pending.size:
        current[pending] += sampler.rng.exponential(1.0 / peak_rate[pending])
        multiplier = seasonal_multiplier(
            start_epoch + current[pending], p.seasonality_amplitude, p.seasonality_peak_day
        )
        accept_probability = multiplier / (1 + p.seasonality_amplitude)
        accepted = sampler.rng.random(pending.size) < accept_probability
        beyond = current[pending] >= p.horizon_days
        result[pending[accepted]] = current[pending[accepted]]
        pending = pending[~accepted & ~beyond]
    return result


def _order_experiences(sampler: _Sampler, customers: pd.DataFrame, who: np.ndarray) -> dict[str, np.ndarray]:
    """How each order in this round goes: channel, payment, cancellation, delivery, item problems, returns."""
    p = sampler.params
    rng = sampler.rng
    n = who.size
    channel = sampler.habitual(customers["preferred_channel"].to_numpy()[who], p.channel_shares)
    payment = sampler.habitual(customers["preferred_payment"].to_numpy()[who], p.payment_shares)
    cancel_draw = rng.random(n)
    out_of_stock = cancel_draw < p.out_of_stock_rate
    customer_cancel = (cancel_draw >= p.out_of_stock_rate) & (
        cancel_draw < p.out_of_stock_rate + p.customer_cancel_rate
    )
    payment_failure = (cancel_draw >= p.out_of_stock_rate + p.customer_cancel_rate) & (
        cancel_draw < p.out_of_stock_rate + p.customer_cancel_rate + p.payment_failure_rate
    )
    cancelled = out_of_stock | customer_cancel | payment_failure
    late_rate = _lookup(channel, p.channel_shares, p.late_rate_by_channel)
    late = ~cancelled & (rng.random(n) < late_rate)
    item_draw = rng.random(n)
    wrong_item = ~cancelled & (item_draw < p.wrong_item_rate)
    damaged = ~cancelled & (item_draw >= p.wrong_item_rate) & (item_draw < p.wrong_item_rate + p.damaged_rate)
    return {
        "channel": channel,
        "payment_method": payment,
        "out_of_stock": out_of_stock,
        "customer_cancel": customer_cancel,
        "payment_failure": payment_failure,
        "cancelled": cancelled,
        "late_delivery": late,
        "wrong_item": wrong_item,
        "damaged": damaged,
    }


def _order_timeline(sampler: _Sampler, day: np.ndarray, exp: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Delivery, return, review and ticket times (days since start) for this round's orders; NaN = none."""
    p = sampler.params
    rng = sampler.rng
    n = day.size
    promised_days = _lookup(exp["channel"], p.channel_shares, p.promised_days_by_channel)
    promised = day + promised_days
    on_time = day + rng.uniform(0.3, 1.0, n) * promised_days
    late = promised + rng.geometric(0.3, n) + rng.random(n)  # at least a day late
    delivered = np.where(exp["cancelled"], np.nan, np.where(exp["late_delivery"], late, on_time))
    promised = np.where(exp["cancelled"], np.nan, promised)
    cancel_delay = np.select(
        [exp["out_of_stock"], exp["customer_cancel"], exp["payment_failure"]],
        [p.cancel_delay_mean_days[kind] for kind in ("out_of_stock", "customer", "payment")],
        default=np.nan,
    )
    cancelled_at = day + rng.exponential(1.0, n) * cancel_delay

    bad_item = exp["wrong_item"] | exp["damaged"]
    returned_bad = bad_item & (rng.random(n) < p.bad_item_return_rate)
    returned_other = ~bad_item & ~exp["cancelled"] & (rng.random(n) < p.customer_return_rate)
    returned = returned_bad | returned_other
    returned_at = np.where(returned, delivered + rng.uniform(2, 14, n), np.nan)

    bad = exp["late_delivery"] | bad_item | exp["out_of_stock"]
    review_rate = np.where(bad, p.review_rate_after_bad_experience, p.review_rate)
    reviewed = ~exp["cancelled"] & (rng.random(n) < review_rate)
    reviewed_at = np.where(reviewed, delivered + rng.exponential(4.0, n), np.nan)

    ticket_rate = np.full(n, p.ticket_rate["none"])
    for kind in EXPERIENCES:  # later kinds win: item problems over lateness, as the ticket's reason
        ticket_rate = np.where(exp[kind], p.ticket_rate[kind], ticket_rate)
    ticketed = rng.random(n) < ticket_rate
    noticed = np.where(exp["cancelled"], cancelled_at, np.where(exp["late_delivery"] & ~bad_item, promised, delivered))
    opened_at = np.where(ticketed, noticed + rng.exponential(1.0, n), np.nan)
    resolution = rng.lognormal(np.log(p.ticket_resolution_median_days), 1.0, n)
    unresolved = rng.random(n) < p.ticket_unresolved_share
    resolved_at = np.where(ticketed & ~unresolved, opened_at + resolution, np.nan)
    return {
        "promised": promised,
        "delivered": delivered,
        "cancelled_at": cancelled_at,
        "returned_bad": returned_bad,
        "returned_at": returned_at,
        "reviewed_at": reviewed_at,
        "opened_at": opened_at,
        "resolved_at": resolved_at,
        "resolution_days": np.where(ticketed & ~unresolved, resolution, np.inf),
    }


def _dropout_probability(
    p: SyntheticShopParams,
    base: np.ndarray,
    loyalty: np.ndarray,
    exp: dict[str, np.ndarray],
    resolution_days: np.ndarray,
) -> np.ndarray:
    invoice_code = list(p.payment_shares).index("invoice") if "invoice" in p.payment_shares else -1
    base = base * np.where(exp["payment_method"] == invoice_code, p.invoice_dropout_multiplier, 1.0)
    base = base * np.where(loyalty, p.loyalty_dropout_multiplier, 1.0)
    recovered = resolution_days <= p.recovery_days
    recovery = np.where(recovered, 1 - p.recovery_effect, 1.0)
    stay = 1 - base
    effects = {
        "late_delivery": p.late_delivery_effect,
        "wrong_item": p.wrong_item_effect,
        "damaged": p.damaged_effect,
        "out_of_stock": p.out_of_stock_effect,
    }
    for kind, effect in effects.items():
        stay = stay * (1 - np.where(exp[kind], effect * recovery, 0.0))
    return 1 - stay


def _simulate_orders(
    sampler: _Sampler, customers: pd.DataFrame, start: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Run the rounds; returns one row per order (times in days), each customer's dropout day and loyalty joining
    day (inf = never)."""
    p = sampler.params
    start_epoch = epoch_days(start)
    rate = customers["purchase_rate_per_day"].to_numpy()
    base = customers["base_dropout"].to_numpy()
    joins_after = customers["loyalty_after_orders"].to_numpy()
    value_scale = customers["value_scale"].to_numpy()
    dropped_out = np.full(len(customers), np.inf)
    joined_loyalty = np.where(joins_after == 0, customers["signed_up_day"].to_numpy(), np.inf)
    orders_placed = np.zeros(len(customers), dtype=np.int64)

    who = customers["customer_index"].to_numpy()
    day = customers["signed_up_day"].to_numpy() + sampler.rng.exponential(0.01, len(customers))
    keep = day < p.horizon_days
    who, day = who[keep], day[keep]
    rounds: list[dict[str, np.ndarray]] = []
    progress = tqdm(desc="simulating orders", unit=" orders", unit_scale=True, mininterval=1.0)
    while who.size:
        progress.update(who.size)
        exp = _order_experiences(sampler, customers, who)
        timeline = _order_timeline(sampler, day, exp)
        member = joined_loyalty[who] <= day
        drops = sampler.rng.random(who.size) < _dropout_probability(
            p, base[who], member, exp, timeline["resolution_days"]
        )
        dropped_out[who[drops]] = day[drops]
        orders_placed[who] += 1
        joins = ~drops & (orders_placed[who] == joins_after[who])
        joined_loyalty[who[joins]] = day[joins] + sampler.rng.exponential(p.loyalty_join_delay_mean_days, joins.sum())
        rounds.append(
            {
                "customer_index": who,
                "day": day,
                "value": value_scale[who] * sampler.rng.lognormal(0.0, 0.4, who.size),
                **exp,
                **{k: v for k, v in timeline.items() if k != "resolution_days"},
            }
        )
        next_day = _next_order_day(sampler, day[~drops], rate[who[~drops]], start_epoch)
        active = next_day < p.horizon_days
        who, day = who[~drops][active], next_day[active]
        log.debug("round %d: %d customers still ordering", len(rounds), who.size)
    progress.close()
    return _orders_by_time(rounds), dropped_out, joined_loyalty


def _orders_by_time(rounds: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The rounds' orders in one frame sorted by day, then customer (stably). Sorted as numpy columns: pandas'
    two-key sort factorises the float days first (a fifth of generate's time at 1M customers, under cProfile)."""
    # Column by column, each round's arrays dropped once joined and each unsorted column once sorted, so the orders
    # are not held three times over (rounds, joined, sorted) as a concat and a sort would hold them.
    columns = {name: np.concatenate([orders.pop(name) for orders in rounds]) for name in list(rounds[0])}
    by_time = np.lexsort((columns["customer_index"], columns["day"]))
    for name, values in columns.items():
        columns[name] = values[by_time]
    return pd.DataFrame(columns)


def _to_timestamp(start: pd.Timestamp, days: np.ndarray | pd.Series) -> pd.Series:
    """Days since start → naive timestamps rounded to the second; NaN → NaT."""
    days = np.asarray(days, dtype=float)
    seconds = np.round(np.nan_to_num(days) * SECONDS_PER_DAY).astype(np.int64)
    nanoseconds = pd.Timestamp(start).value + seconds * 1_000_000_000
    values = np.where(np.isnan(days), np.iinfo(np.int64).min, nanoseconds)  # int64 min is NaT
    return pd.Series(values.view("datetime64[ns]"))


def _known(days: np.ndarray, horizon: float) -> np.ndarray:
    """Events after the data's as-of time were not known when it was exported."""
    return np.where(days < horizon, days, np.nan)


def _build_tables(
    orders: pd.DataFrame, customers: pd.DataFrame, start: pd.Timestamp, p: SyntheticShopParams
) -> dict[str, pd.DataFrame]:
    horizon = p.horizon_days
    customer_index = orders["customer_index"].to_numpy()
    customer_id = _customer_ids(customer_index)
    order_number = np.arange(len(orders))
    delivered = _known(orders["delivered"].to_numpy(), horizon)
    returned_at = _known(orders["returned_at"].to_numpy(), horizon)
    cancelled_at = _known(orders["cancelled_at"].to_numpy(), horizon)
    cancelled = ~np.isnan(cancelled_at)
    # As the export shows it: an order the shop will cancel after the export is still placed.
    status = np.select(
        [cancelled, orders["cancelled"].to_numpy(), ~np.isnan(returned_at), np.isnan(delivered)],
        [
            ORDER_STATUS_CODES["cancelled"],
            ORDER_STATUS_CODES["placed"],
            ORDER_STATUS_CODES["returned"],
            ORDER_STATUS_CODES["shipped"],
        ],
        default=ORDER_STATUS_CODES["delivered"],
    )
    cancel_reason = np.select(
        [
            cancelled & orders["out_of_stock"],
            cancelled & orders["customer_cancel"],
            cancelled & orders["payment_failure"],
        ],
        [0, 1, 2],
        default=-1,
    )
    orders_table = pd.DataFrame(
        {
            "order_id": _ids("O", order_number, 9),
            "customer_id": customer_id,
            "ordered_at": _to_timestamp(start, orders["day"]),
            "order_value": np.round(orders["value"].to_numpy(), 2),
            "status": _strings(status, list(ORDER_STATUS_CODES)),
            "cancel_reason": _strings(cancel_reason, ["out_of_stock", "customer", "payment"]),
            "cancelled_at": _to_timestamp(start, cancelled_at),
            "channel": _strings(orders["channel"].to_numpy(), p.channel_shares),
            "payment_method": _strings(orders["payment_method"].to_numpy(), p.payment_shares),
            "promised_delivery_at": _to_timestamp(start, orders["promised"]),
            "delivered_at": _to_timestamp(start, delivered),
            # customers do not move: every order goes to their country
            "country": _strings(customers["country"].to_numpy()[customer_index], p.country_shares),
        }
    )

    lines = (
        LineDraws(customer_index, orders_table["order_value"].to_numpy(), len(customers), p.seed)
        if p.order_lines
        else None
    )

    reviewed_at = _known(orders["reviewed_at"].to_numpy(), horizon)
    has_review = ~np.isnan(reviewed_at)
    reviews = pd.DataFrame(
        {
            "order_id": _ids("O", order_number[has_review], 9),
            "review_score": _review_scores(orders[has_review], p.seed),
            "reviewed_at": _to_timestamp(start, reviewed_at[has_review]),
        }
    )

    opened_at = _known(orders["opened_at"].to_numpy(), horizon)
    has_ticket = ~np.isnan(opened_at)
    ticket_orders = orders[has_ticket]
    tickets = pd.DataFrame(
        {
            "ticket_id": _ids("T", np.arange(int(has_ticket.sum())), 9),
            "customer_id": _customer_ids(customer_index[has_ticket]),
            "order_id": _ids("O", order_number[has_ticket], 9),
            "opened_at": _to_timestamp(start, opened_at[has_ticket]),
            "resolved_at": _to_timestamp(start, _known(ticket_orders["resolved_at"].to_numpy(), horizon)),
            "reason": _ticket_reasons(ticket_orders),
        }
    )

    has_return = ~np.isnan(returned_at)
    return_reasons = _return_reasons(orders[has_return], p.seed)
    returned_lines = (
        np.full(int(has_return.sum()), -1)
        if lines is None
        else lines.returned_lines(order_number[has_return], return_reasons)
    )
    returns = pd.DataFrame(
        {
            "order_id": _ids("O", order_number[has_return], 9),
            "returned_at": _to_timestamp(start, returned_at[has_return]),
            "reason": return_reasons,
            "line_id": _ids("L", returned_lines, 10).where(returned_lines >= 0),
        }
    )

    joined = customers[customers["signed_up_day"] < horizon]
    loyalty_joined = _known(joined["loyalty_joined_day"].to_numpy(), horizon)
    customers_table = pd.DataFrame(
        {
            "customer_id": _customer_ids(joined["customer_index"].to_numpy()),
            "signed_up_at": _to_timestamp(start, joined["signed_up_day"]),
            "loyalty_member": ~np.isnan(loyalty_joined),
            # (nobody leaves the synthetic programme)
            "loyalty_joined_at": _to_timestamp(start, loyalty_joined),
            "loyalty_left_at": _to_timestamp(start, np.full(len(joined), np.nan)),
            "country": _strings(joined["country"].to_numpy(), p.country_shares),
        }
    )
    return {
        "customers": customers_table,
        "orders": orders_table,
        "reviews": reviews.sort_values("reviewed_at", kind="stable").reset_index(drop=True),
        "tickets": tickets,
        "returns": returns.sort_values("returned_at", kind="stable").reset_index(drop=True),
        # Last: the dirt's random stream reaches the other tables as it did before lines existed.
        **({} if lines is None else {"order_lines": _order_lines_table(lines, order_number)}),
    }


def _order_lines_table(lines: LineDraws, order_number: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line_id": _ids("L", np.arange(lines.order.size), 10),
            "order_id": _ids("O", order_number[lines.order], 9),
            "product_id": _ids("P", lines.product, 5),
            "category": _strings(lines.product_category[lines.product], list(CATEGORIES)),
            "quantity": lines.quantity,
            "unit_price": lines.unit_price,
        }
    )


ORDER_STATUS_CODES = {"delivered": 0, "shipped": 1, "cancelled": 2, "returned": 3, "placed": 4}


def _customer_ids(index: np.ndarray) -> pd.Series:
    return _ids("C", index, 8)


# Review-score distributions (1..5) by what happened to the order.
REVIEW_SCORE_PROBABILITIES = {
    "none": (0.02, 0.03, 0.10, 0.30, 0.55),
    "late_delivery": (0.15, 0.25, 0.30, 0.20, 0.10),
    "item_problem": (0.40, 0.30, 0.15, 0.10, 0.05),
}


def _review_scores(orders: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    item_problem = (orders["wrong_item"] | orders["damaged"]).to_numpy()
    late = orders["late_delivery"].to_numpy()
    kinds = {
        "none": ~item_problem & ~late,
        "late_delivery": ~item_problem & late,
        "item_problem": item_problem,
    }
    scores = np.zeros(len(orders), dtype=np.int64)
    for name, probabilities in REVIEW_SCORE_PROBABILITIES.items():
        mask = kinds[name]
        scores[mask] = rng.choice(np.arange(1, 6), size=int(mask.sum()), p=probabilities)
    return scores


TICKET_REASON_NAMES = ["wrong_item", "damaged", "late_delivery", "refund", "other"]


def _ticket_reasons(orders: pd.DataFrame) -> pd.Series:
    codes = np.select(
        [orders["wrong_item"], orders["damaged"], orders["late_delivery"], orders["out_of_stock"]],
        [0, 1, 2, 3],
        default=4,
    )
    return _strings(codes, TICKET_REASON_NAMES)


RETURN_REASON_NAMES = ["wrong_item", "damaged", "wrong_size", "changed_mind"]


def _return_reasons(orders: pd.DataFrame, seed: int) -> pd.Series:
    rng = np.random.default_rng([seed, 2])
    customer_side = rng.choice([2, 3], size=len(orders), p=[0.6, 0.4])
    codes = np.select(
        [orders["wrong_item"] & orders["returned_bad"], orders["damaged"] & orders["returned_bad"]],
        [0, 1],
        default=customer_side,
    )
    return _strings(codes, RETURN_REASON_NAMES)


def _customer_truth(customers: pd.DataFrame, dropped_out: np.ndarray, start: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": _customer_ids(customers["customer_index"].to_numpy()).to_numpy(),
            "signed_up_at": _to_timestamp(start, customers["signed_up_day"]),
            "purchase_rate_per_day": customers["purchase_rate_per_day"].to_numpy(),
            "base_dropout": customers["base_dropout"].to_numpy(),
            "dropped_out_at": _to_timestamp(start, np.where(np.isinf(dropped_out), np.nan, dropped_out)),
        }
    )


def generate_shop(params: SyntheticShopParams) -> SyntheticShop:
    """Generate the shop's contract tables, ground truth and injected dirt, deterministically from the seed."""
    from pipelines.sources.dirt import inject_dirt

    start = pd.Timestamp(params.start_date)
    sampler = _Sampler(params)
    customers = _simulate_customers(sampler)
    orders, dropped_out, joined_loyalty = _simulate_orders(sampler, customers, start)
    customers = customers.assign(loyalty_joined_day=joined_loyalty)
    tables = _build_tables(orders, customers, start, params)
    del orders  # the simulation's columns: not needed from here on, and the dirt below is generate's peak
    dirty_tables, dirt = inject_dirt(tables, params.dirty_share, pd.Timestamp(params.end_date), params.seed)
    for name, table in dirty_tables.items():
        missing = set(TABLES_BY_NAME[name].column_names) ^ set(table.columns)
        if missing:
            raise AssertionError(f"generator wrote {name} with columns off the contract: {sorted(missing)}")
    joined = (customers["signed_up_day"] < params.horizon_days).to_numpy()  # the same test as the customers table
    truth = _customer_truth(customers[joined], dropped_out[joined], start)
    return SyntheticShop(tables=dirty_tables, customer_truth=truth, dirt=dirt)
