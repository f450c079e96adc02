"""Who is in the population at a cutoff, and whether they churned after it."""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import at, cancel_known_at, cancelled_before, days_before, orders_before
from features.cutoffs import label_observed


def population(orders: ibis.Table, cutoff: pd.Timestamp, active_window_days: int) -> ibis.Table:
    """Customers with at least one order (any status: an out-of-stock cancellation is a reason to look at them)
    in the `active_window_days` before the cutoff."""
    placed = orders_before(orders, cutoff)
    last = placed.aggregate(by="customer_id", last_placed_at=placed.ordered_at.max())
    return last.filter(is_active(last.last_placed_at, cutoff, active_window_days)).select("customer_id")


def is_active(last_placed_at: ibis.Value, cutoff: pd.Timestamp, active_window_days: int) -> ibis.Value:
    """In the population, given the time of the customer's last order (any status) before the cutoff."""
    return last_placed_at >= days_before(cutoff, active_window_days)


def churn_labels(orders: ibis.Table, cutoff: pd.Timestamp, horizon_days: int, as_of: pd.Timestamp) -> ibis.Table | None:
    """customer_id and churned = 0 for customers who came back; None when the window is not fully observed by the
    data's as-of time. Everyone else in the population churned.

    Coming back: an order placed in [cutoff, cutoff + horizon) that was not known to be cancelled by the window's
    end. The label depends only on what was known at cutoff + horizon: a cancellation after the window does not
    undo a return (the shop saw the customer come back), one within it does. Without cancellation times the
    export's status decides (a snapshot: an order cancelled after the window then counts as never placed)."""
    if not label_observed(cutoff, horizon_days, as_of):
        return None
    end = at(cutoff + pd.Timedelta(days=horizon_days))
    in_window = (orders.ordered_at >= at(cutoff)) & (orders.ordered_at < end)
    returned = orders.filter(in_window & ~cancelled_before(cancel_known_at(orders), end))
    return returned.select("customer_id").distinct().mutate(churned=ibis.literal(0, type="int8"))
