"""Seasonal memory: what the customer did in the same window a year earlier.

A shop's seasons repeat: a customer who bought before last Christmas is likelier to buy before this one. At cutoff t
with horizon h, the window a year earlier is [t - 365 days, t - 365 days + h): it ended before t (h < 365), so the
features see only orders placed, and cancellations known, before t. Where the data's history does not reach back a
year before t, the window was not observed and the features are missing (null), not zero.
"""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import at, cancelled_before, count_if
from features.inputs import FeatureInputs
from features.spec import FeatureSpec, reading_order_status

YEAR_DAYS = 365

SEASONAL_SPECS: tuple[FeatureSpec, ...] = reading_order_status((
    FeatureSpec("orders_year_ago_window", "seasonal", "int64", "orders", "horizon a year before",
                "Non-cancelled orders placed in [cutoff - 365 days, cutoff - 365 days + horizon): the label's window "
                "a year earlier (null where the data's history does not reach back that far)."),
    FeatureSpec("value_year_ago_window", "seasonal", "float64", "currency", "horizon a year before",
                "Value of those orders (null where the history does not reach back that far)."),
))  # fmt: skip


def year_ago_window(cutoff: pd.Timestamp, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of the label window a year before the cutoff; it ends before the cutoff."""
    if not 0 < horizon_days < YEAR_DAYS:
        raise ValueError(f"the seasonal features need a horizon shorter than a year, not {horizon_days} days")
    start = cutoff - pd.Timedelta(days=YEAR_DAYS)
    return start, start + pd.Timedelta(days=horizon_days)


def history_reaches_back(inputs: FeatureInputs, cutoff: pd.Timestamp) -> bool:
    """Whether the data's orders start at or before the window a year before the cutoff."""
    first = inputs.first_known.get("orders")
    return first is not None and first <= cutoff - pd.Timedelta(days=YEAR_DAYS)


def seasonal_part(facts: ibis.Table, cutoff: pd.Timestamp, horizon_days: int) -> ibis.Table:
    """Per customer with an order in the window a year before: its non-cancelled orders and their value, from
    `order_facts` (cancellations counted only when known before the cutoff)."""
    start, end = year_ago_window(cutoff, horizon_days)
    in_window = facts.filter((facts.ordered_at >= at(start)) & (facts.ordered_at < at(end)))
    qualifying = ~cancelled_before(in_window.cancel_known_at, at(cutoff))
    return in_window.aggregate(
        by="customer_id",
        year_ago_orders=count_if(qualifying),
        year_ago_value=ibis.ifelse(qualifying, in_window.order_value, 0.0).sum(),
    )


def seasonal_columns(table: ibis.Table, inputs: FeatureInputs, cutoff: pd.Timestamp) -> dict[str, ibis.Value]:
    """The seasonal features of a per-customer table joined with `seasonal_part`: 0 for a customer without an order
    in the window, null for everyone where the history does not reach back to it."""
    if not history_reaches_back(inputs, cutoff):
        return {spec.name: ibis.null().cast(spec.dtype) for spec in SEASONAL_SPECS}
    return {
        "orders_year_ago_window": table.year_ago_orders.fill_null(0),
        "value_year_ago_window": table.year_ago_value.fill_null(0.0),
    }
