"""Small expression helpers shared by the feature groups (portable Ibis: no backend-specific SQL)."""

from __future__ import annotations

import ibis
import pandas as pd

SECONDS_PER_DAY = 86_400


def at(timestamp: pd.Timestamp) -> ibis.Scalar:
    return ibis.literal(timestamp.to_pydatetime(), type="timestamp")


def days_between(later: ibis.Value, earlier: ibis.Value) -> ibis.Value:
    """Fractional days from `earlier` to `later`."""
    return (later.epoch_seconds() - earlier.epoch_seconds()).cast("float64") / SECONDS_PER_DAY


def days_before(cutoff: pd.Timestamp, days: int) -> ibis.Scalar:
    return at(cutoff - pd.Timedelta(days=days))


def count_if(condition: ibis.Value) -> ibis.Value:
    return ibis.ifelse(condition, 1, 0).sum()


def not_cancelled(orders: ibis.Table) -> ibis.Value:
    """A qualifying order: anything but a cancellation (an unknown status counts)."""
    return orders.status.fill_null("") != "cancelled"


def orders_before(orders: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    return orders.filter(orders.ordered_at < at(cutoff))


def join_customers(left: ibis.Table, right: ibis.Table | None) -> ibis.Table:
    """Left join of per-customer tables on customer_id (None: nothing to add)."""
    if right is None:
        return left
    return left.left_join(right, "customer_id").drop("customer_id_right")


def latest(table: ibis.Table, time: str, value: str, name: str, last_times: ibis.Table | None = None) -> ibis.Table:
    """Per customer, `value` on the row with the latest `time`; ties resolve to the largest value, so the result
    never depends on row order. `last_times` (customer_id, last_time: each customer's latest `time` in `table`),
    when the caller has it already, saves aggregating it again."""
    last = table.aggregate(by="customer_id", last_time=table[time].max()) if last_times is None else last_times
    on_last = table.join(last, [table.customer_id == last.customer_id, table[time] == last.last_time])
    return on_last.aggregate(by="customer_id", **{name: on_last[value].max()})
