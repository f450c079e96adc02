"""Orders as every feature group reads them: per-order facts that no cutoff changes, and one aggregation of the
orders placed before a cutoff per customer that the RFM, trend, relationship and satisfaction features share.

Computing the facts once per run and every per-customer order metric in one aggregation (instead of one per
feature group and per "latest" value, joined back together) is what keeps many cutoffs fast at 1M customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import ibis
import pandas as pd

from features.common import (
    at,
    cancel_known_at,
    cancelled_before,
    count_if,
    days_before,
    days_between,
    orders_before,
)

# Windows (days before the cutoff) in which qualifying orders are counted (features orders_30d, ...).
COUNT_WINDOWS = (30, 90, 365)
# A column with at most this many different values has its orders counted per value in `order_summary` (see
# `column_levels`); one with more is counted by a grouping of its own (features.relationship).
MAX_COUNTED_LEVELS = 16


def order_facts(orders: ibis.Table, events: ibis.Table | None = None) -> ibis.Table:
    """One row per order: order_id, customer_id, ordered_at, order_value, channel, payment_method, country and
    - cancel_known_at: when the order became known as cancelled (null: not cancelled), see `cancel_known_at`;
    - settled_gap_days: for an order never cancelled, days since the customer's previous order never cancelled
      (null on the first, and on orders cancelled at any time), see `_with_settled_gaps`;
    - first_bad_known_at: when the first bad experience on the order in `events` became known (null: none, or no
      events given: only the satisfaction features read it).

    Which orders qualify (are not cancelled) depends on the cutoff, so `order_summary` decides it per cutoff.
    """
    facts = _with_settled_gaps(
        orders.select(
            "order_id",
            "customer_id",
            "ordered_at",
            "order_value",
            "channel",
            "payment_method",
            "country",
            cancel_known_at=cancel_known_at(orders),
        )
    )
    if events is None:
        return facts.mutate(first_bad_known_at=ibis.null().cast("timestamp"))
    on_orders = events.filter(events.order_id.notnull())
    first_bad = on_orders.aggregate(by="order_id", first_bad_known_at=on_orders.known_at.min())
    return facts.left_join(first_bad, "order_id").drop("order_id_right")


def orders_known_at(facts: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """The orders placed before the cutoff, with
    - qualifying: not known to be cancelled before the cutoff (what RFM counts);
    - gap_days: days since the customer's previous qualifying order (null on the first, and on orders that do not
      qualify). A cancellation after the cutoff changes neither.

    A customer's qualifying orders at the cutoff are those never cancelled, unless one of them is *pending*: placed
    before the cutoff and cancelled only from it on. For every other customer the gaps are the cutoff-independent
    `settled_gap_days`; only the few customers with a pending cancellation have their gaps chained again here, so
    that each cutoff sorts a few orders instead of all of them. Both give the same float per gap."""
    placed = orders_before(facts, cutoff)
    placed = placed.mutate(qualifying=~cancelled_before(placed.cancel_known_at, at(cutoff)))
    # A filter of its own on the facts (not on `placed`): DuckDB would materialise a shared one.
    pending = facts.filter(facts.ordered_at < at(cutoff), facts.cancel_known_at >= at(cutoff))
    pending_customers = pending.select("customer_id").distinct()
    settled = placed.anti_join(pending_customers, "customer_id")
    settled = settled.mutate(gap_days=settled.settled_gap_days)
    return ibis.union(settled, _chained_gaps(placed.semi_join(pending_customers, "customer_id"))).drop(
        "settled_gap_days"
    )


def _chained_gaps(placed: ibis.Table) -> ibis.Table:
    """gap_days of orders placed before a cutoff (with `qualifying`), chained along each customer's qualifying
    orders."""
    # Partitioned by qualifying too, so the previous row of a qualifying order is the previous qualifying order.
    window = ibis.window(
        group_by=[placed.customer_id, placed.qualifying], order_by=[placed.ordered_at, placed.order_id]
    )
    gap_days = days_between(placed.ordered_at, placed.ordered_at.lag().over(window))
    return placed.mutate(gap_days=ibis.ifelse(placed.qualifying, gap_days, ibis.null()))


def _with_settled_gaps(facts: ibis.Table) -> ibis.Table:
    """settled_gap_days: for an order never cancelled, days since the customer's previous order never cancelled.
    At a cutoff where none of the customer's orders placed before it is cancelled only later, these orders are
    exactly the qualifying ones (an order cancelled before the cutoff, or known cancelled when placed, never
    qualifies), so this is the gap `orders_known_at` needs, computed once for every cutoff."""
    facts = facts.mutate(never_cancelled=facts.cancel_known_at.isnull())
    window = ibis.window(
        group_by=[facts.customer_id, facts.never_cancelled], order_by=[facts.ordered_at, facts.order_id]
    )
    gap_days = days_between(facts.ordered_at, facts.ordered_at.lag().over(window))
    return facts.mutate(settled_gap_days=ibis.ifelse(facts.never_cancelled, gap_days, ibis.null())).drop(
        "never_cancelled"
    )


def column_levels(facts: ibis.Table, columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Per column of `facts` with at most MAX_COUNTED_LEVELS different non-null values, those values, sorted (a
    column with more is left out). The values of every order, future ones too: they only name what to count, and a
    value no order before a cutoff has counts 0 there."""
    levels = {}
    for column in columns:
        values = facts.filter(facts[column].notnull()).select(column).distinct().limit(MAX_COUNTED_LEVELS + 1)
        found = values.to_pyarrow().column(0).to_pylist()
        if len(found) <= MAX_COUNTED_LEVELS:
            levels[column] = tuple(sorted(found))
    return levels


def level_count(column: str, index: int) -> str:
    """The name of `order_summary`'s count of orders whose `column` is its `index`-th level."""
    return f"{column}_level_{index}_orders"


def most_common(summary: ibis.Table, column: str, levels: tuple[str, ...]) -> tuple[ibis.Value, ibis.Value]:
    """From `order_summary`'s counts per level: the most frequent non-null value of `column` in the orders placed
    before the cutoff (ties go to the alphabetically first; null without one) and how many different values there
    are."""
    counts = [summary[level_count(column, index)] for index in range(len(levels))]
    if not counts:
        return ibis.null().cast("string"), ibis.literal(0, type="int64")
    top = counts[0] if len(counts) == 1 else ibis.greatest(*counts)  # Spark's greatest() needs two arguments
    # Levels are sorted, so the first level with the top count is the alphabetically first of a tie.
    value = ibis.cases(*((count == top, level) for count, level in zip(counts, levels, strict=True)))
    used = sum((ibis.ifelse(count > 0, 1, 0) for count in counts), ibis.literal(0, type="int64"))
    return ibis.ifelse(top > 0, value, ibis.null()).cast("string"), used.cast("int64")


def order_summary(
    facts: ibis.Table, cutoff: pd.Timestamp, levels: Mapping[str, tuple[str, ...]] | None = None
) -> ibis.Table:
    """One row per customer with an order (any status) placed before the cutoff, with every per-customer metric of
    those orders that a feature needs. Metrics of qualifying orders are null (sums, means, extremes) or 0 (counts)
    for a customer without one. With `levels` (`column_levels`), also the orders of any status per level of those
    columns (`level_count`), from which `most_common` finds each customer's most frequent value."""
    placed = orders_known_at(facts, cutoff)
    qualifying = placed.qualifying
    # 180: the start of the trend's previous 90 days
    in_window = {days: placed.ordered_at >= days_before(cutoff, days) for days in (*COUNT_WINDOWS, 180)}
    previous_90 = ~in_window[90] & in_window[180]
    value = ibis.ifelse(qualifying, placed.order_value, ibis.null())
    went_wrong = placed.first_bad_known_at < at(cutoff)
    return placed.aggregate(
        by="customer_id",
        # every order placed
        first_order_at=placed.ordered_at.min(),
        last_placed_at=placed.ordered_at.max(),
        orders_placed=placed.count(),
        orders_cancelled=count_if(~qualifying),
        invoice_share=(placed.payment_method == "invoice").cast("float64").mean(),
        bad_orders=count_if(went_wrong),
        # the last order went wrong when the last order that went wrong is that late (of simultaneous ones, any)
        last_went_wrong_at=ibis.ifelse(went_wrong, placed.ordered_at, ibis.null()).max(),
        # qualifying orders
        last_order_at=ibis.ifelse(qualifying, placed.ordered_at, ibis.null()).max(),
        **{f"orders_{days}d": count_if(qualifying & in_window[days]) for days in COUNT_WINDOWS},
        orders_total=count_if(qualifying),
        value_sum=value.sum(),
        value_mean=value.mean(),
        value_max=value.max(),
        value_365d=ibis.ifelse(qualifying & in_window[365], placed.order_value, 0.0).sum(),
        gap_mean_days=placed.gap_days.mean(),
        gap_std_days=placed.gap_days.std(),
        orders_prev_90d=count_if(qualifying & previous_90),
        value_90d=ibis.ifelse(qualifying & in_window[90], placed.order_value, 0.0).sum(),
        value_prev_90d=ibis.ifelse(qualifying & previous_90, placed.order_value, 0.0).sum(),
        **{
            level_count(column, index): count_if(placed[column] == level)
            for column, values in (levels or {}).items()
            for index, level in enumerate(values)
        },
    )
