"""Recency, frequency, monetary value and their trend, from orders placed before the cutoff."""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import at, days_between
from features.orders import COUNT_WINDOWS, order_facts, order_summary
from features.spec import FeatureSpec, reading_order_status

# Every RFM and trend feature but the first order's age and the month counts non-cancelled orders.
RFM_SPECS: tuple[FeatureSpec, ...] = reading_order_status((
    FeatureSpec(
        "days_since_last_order",
        "rfm",
        "float64",
        "days",
        "all history",
        "Days from the last non-cancelled order to the cutoff.",
    ),
    FeatureSpec(
        "days_since_first_order",
        "rfm",
        "float64",
        "days",
        "all history",
        "Days from the first order (any status) to the cutoff.",
    ),
    *(
        FeatureSpec(
            f"orders_{days}d",
            "rfm",
            "int64",
            "orders",
            f"{days} days",
            f"Non-cancelled orders placed in the {days} days before the cutoff.",
        )
        for days in COUNT_WINDOWS
    ),
    FeatureSpec(
        "orders_total", "rfm", "int64", "orders", "all history", "Non-cancelled orders placed before the cutoff."
    ),
    FeatureSpec("value_sum", "rfm", "float64", "currency", "all history", "Total value of non-cancelled orders."),
    FeatureSpec("value_mean", "rfm", "float64", "currency", "all history", "Mean value of non-cancelled orders."),
    FeatureSpec("value_max", "rfm", "float64", "currency", "all history", "Largest non-cancelled order."),
    FeatureSpec(
        "value_365d",
        "rfm",
        "float64",
        "currency",
        "365 days",
        "Value of non-cancelled orders in the 365 days before the cutoff.",
    ),
    FeatureSpec(
        "gap_mean_days",
        "rfm",
        "float64",
        "days",
        "all history",
        "Mean days between consecutive non-cancelled orders (null with fewer than two).",
    ),
    FeatureSpec(
        "gap_std_days",
        "rfm",
        "float64",
        "days",
        "all history",
        "Standard deviation of those gaps (null with fewer than three orders).",
    ),
    FeatureSpec(
        "overdue_ratio",
        "rfm",
        "float64",
        "ratio",
        "all history",
        "days_since_last_order / gap_mean_days: above 1, the customer is later than usual.",
    ),
    FeatureSpec(
        "cancelled_share",
        "rfm",
        "float64",
        "share",
        "all history",
        "Share of orders placed before the cutoff that were cancelled.",
        ("orders.status",),
    ),
), unless=("days_since_first_order",))  # fmt: skip

TREND_SPECS: tuple[FeatureSpec, ...] = reading_order_status((
    FeatureSpec("orders_prev_90d", "trend", "int64", "orders", "180 to 90 days",
                "Non-cancelled orders placed between 180 and 90 days before the cutoff."),
    FeatureSpec("orders_90d_change", "trend", "int64", "orders", "last 90 vs the 90 before",
                "orders_90d minus orders_prev_90d."),
    FeatureSpec("value_90d", "trend", "float64", "currency", "90 days",
                "Value of non-cancelled orders in the 90 days before the cutoff."),
    FeatureSpec("value_90d_change", "trend", "float64", "currency", "last 90 vs the 90 before",
                "value_90d minus the value of the 90 days before those."),
    FeatureSpec("cutoff_month", "trend", "int64", "month", "at the cutoff",
                "Calendar month of the cutoff (1-12), so seasonal churn is learned across years."),
), unless=("cutoff_month",))  # fmt: skip


def rfm_and_trend_features(orders: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """One row per customer with an order before the cutoff."""
    summary = order_summary(order_facts(orders), cutoff)
    return summary.select("customer_id", **rfm_and_trend_columns(summary, cutoff))


def rfm_and_trend_columns(summary: ibis.Table, cutoff: pd.Timestamp) -> dict[str, ibis.Value]:
    """The RFM and trend features from a table holding `order_summary`'s columns at the cutoff."""
    t = at(cutoff)
    days_since_last = days_between(t, summary.last_order_at)
    counts = {
        name: summary[name].fill_null(0)
        for name in ("orders_30d", "orders_90d", "orders_365d", "orders_total", "orders_prev_90d")
    }
    values = {name: summary[name].fill_null(0.0) for name in ("value_sum", "value_365d", "value_90d", "value_prev_90d")}
    return {
        "days_since_last_order": days_since_last,
        "days_since_first_order": days_between(t, summary.first_order_at),
        **{name: counts[name] for name in ("orders_30d", "orders_90d", "orders_365d", "orders_total")},
        "value_sum": values["value_sum"],
        "value_mean": summary.value_mean,
        "value_max": summary.value_max,
        "value_365d": values["value_365d"],
        "gap_mean_days": summary.gap_mean_days,
        "gap_std_days": summary.gap_std_days,
        "overdue_ratio": days_since_last / summary.gap_mean_days.nullif(0.0),
        "cancelled_share": summary.orders_cancelled.cast("float64") / summary.orders_placed,
        "orders_prev_90d": counts["orders_prev_90d"],
        "orders_90d_change": counts["orders_90d"] - counts["orders_prev_90d"],
        "value_90d": values["value_90d"],
        "value_90d_change": values["value_90d"] - values["value_prev_90d"],
        "cutoff_month": ibis.literal(cutoff.month, type="int64"),
    }
