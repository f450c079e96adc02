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


def cancel_known_at(orders: ibis.Table) -> ibis.Value:
    """When the order became known as cancelled; null for an order not cancelled by the export.

    From `cancelled_at` where the source has it. Without it the export's status is all there is: a cancellation then
    counts from the order time, an export-time snapshot (an order cancelled after a cutoff looks cancelled at it)."""
    by_status = ibis.ifelse(orders.status.fill_null("") == "cancelled", orders.ordered_at, ibis.null())
    return ibis.coalesce(orders.cancelled_at, by_status.cast("timestamp"))


def cancelled_before(known_at: ibis.Value, time: ibis.Value) -> ibis.Value:
    """Known to be cancelled before `time`, given `cancel_known_at`."""
    return (known_at < time).fill_null(False)


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
