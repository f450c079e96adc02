"""Orders as every feature group reads them: per-order facts that no cutoff changes, and one aggregation of the
orders placed before a cutoff per customer that the RFM, trend, relationship and satisfaction features share.

Computing the facts once per run and every per-customer order metric in one aggregation (instead of one per
feature group and per "latest" value, joined back together) is what keeps many cutoffs fast at 1M customers.
"""

from __future__ import annotations

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


def order_facts(orders: ibis.Table, events: ibis.Table | None = None) -> ibis.Table:
    """One row per order: order_id, customer_id, ordered_at, order_value, channel, payment_method, country and
    - cancel_known_at: when the order became known as cancelled (null: not cancelled), see `cancel_known_at`;
    - first_bad_known_at: when the first bad experience on the order in `events` became known (null: none, or no
      events given: only the satisfaction features read it).

    Which orders qualify (are not cancelled) depends on the cutoff, so `order_summary` decides it per cutoff.
    """
    facts = orders.select(
        "order_id",
        "customer_id",
        "ordered_at",
        "order_value",
        "channel",
        "payment_method",
        "country",
        cancel_known_at=cancel_known_at(orders),
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
      qualify). A cancellation after the cutoff changes neither."""
    placed = orders_before(facts, cutoff)
    placed = placed.mutate(qualifying=~cancelled_before(placed.cancel_known_at, at(cutoff)))
    # Partitioned by qualifying too, so the previous row of a qualifying order is the previous qualifying order.
    window = ibis.window(
        group_by=[placed.customer_id, placed.qualifying], order_by=[placed.ordered_at, placed.order_id]
    )
    gap_days = days_between(placed.ordered_at, placed.ordered_at.lag().over(window))
    return placed.mutate(gap_days=ibis.ifelse(placed.qualifying, gap_days, ibis.null()))


def order_summary(facts: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """One row per customer with an order (any status) placed before the cutoff, with every per-customer metric of
    those orders that a feature needs. Metrics of qualifying orders are null (sums, means, extremes) or 0 (counts)
    for a customer without one."""
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
    )
