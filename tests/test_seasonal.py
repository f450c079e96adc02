"""Seasonal memory: orders and value in the label's window a year before the cutoff, worked out by hand, null where
the history does not reach back, and blind to everything at or after the cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import features_at
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, known_before
from features.seasonal import year_ago_window

CUTOFF = pd.Timestamp("2024-11-01")
AS_OF = pd.Timestamp("2025-03-01")
PARAMS = FeatureParams(horizon_days=60, active_window_days=365)
# The window a year before: [2023-11-02, 2024-01-01) (2024 is a leap year: 365 days before 11-01 is 2023-11-02).
SEASONAL = ["orders_year_ago_window", "value_year_ago_window"]


def orders(rows: list[tuple[str, str, str, float, str | None]]) -> pd.DataFrame:
    """(order_id, customer_id, ordered_at, value, cancelled_at)"""
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "order_value", "cancelled_at"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    frame["cancelled_at"] = pd.to_datetime(frame["cancelled_at"])
    frame["status"] = frame["cancelled_at"].notna().map({True: "cancelled", False: "delivered"})
    return frame


def shop() -> dict[str, pd.DataFrame]:
    return {
        "returns": pd.DataFrame(
            {"order_id": pd.Series([], dtype="string"), "returned_at": pd.Series([], dtype="datetime64[ns]")}
        ),
        "orders": orders(
            [
                ("o0", "c0", "2023-06-01", 10.0, None),  # the history starts here
                ("o1", "c1", "2023-11-10", 30.0, None),  # in the window
                ("o2", "c1", "2023-12-31 23:00", 20.0, None),  # in the window
                ("o3", "c1", "2024-01-01", 99.0, None),  # the window's end: outside
                ("o4", "c1", "2024-10-01", 5.0, None),  # active at the cutoff
                ("o5", "c2", "2023-11-20", 40.0, "2023-11-21"),  # in the window, cancelled the next day
                ("o6", "c2", "2023-12-01", 15.0, "2024-11-05"),  # in the window, cancelled only after the cutoff
                ("o7", "c2", "2024-09-15", 7.0, None),
                ("o8", "c3", "2024-05-01", 8.0, None),  # a customer since May: nothing a year ago
                ("o9", "c3", "2024-11-01", 50.0, None),  # at the cutoff: not seen
                ("o10", "c1", "2024-12-01", 60.0, None),  # in the label window
            ]
        ),
    }


def test_the_window_a_year_before_ends_before_the_cutoff() -> None:
    assert year_ago_window(CUTOFF, 60) == (pd.Timestamp("2023-11-02"), pd.Timestamp("2024-01-01"))
    with pytest.raises(ValueError, match="shorter than a year"):
        year_ago_window(CUTOFF, 365)


def test_seasonal_features_by_hand() -> None:
    table = features_at(inputs_from_frames(shop(), AS_OF), CUTOFF, PARAMS).execute().set_index("customer_id")
    assert table.loc["c1", SEASONAL].tolist() == [2, 50.0]
    # o5's cancellation was known before the cutoff; o6's only after it, so at the cutoff o6 was an order.
    assert table.loc["c2", SEASONAL].tolist() == [1, 15.0]
    assert table.loc["c3", SEASONAL].tolist() == [0, 0.0]


def test_missing_where_the_history_does_not_reach_back_a_year() -> None:
    later_start = {"orders": shop()["orders"].query("order_id != 'o0'")}  # the history now starts 2023-11-10
    table = features_at(inputs_from_frames(later_start, AS_OF), CUTOFF, PARAMS).execute()
    assert table[SEASONAL].isna().all().all()


def test_events_at_or_after_the_cutoff_change_no_seasonal_feature() -> None:
    full = inputs_from_frames(shop(), AS_OF)
    expected = features_at(full, CUTOFF, PARAMS).execute()
    truncated = inputs_from_frames(known_before(shop(), CUTOFF), CUTOFF, full.available)
    differences = feature_differences(expected, features_at(truncated, CUTOFF, PARAMS).execute())
    assert differences.sum() == 0, differences[differences > 0]
    # A future order placed in the customers' window (back-dated orders do not exist, but a later export may hold
    # more cancellations): cancelling every order after the cutoff changes nothing.
    cancelled_later = shop()
    cancelled_later["orders"] = cancelled_later["orders"].assign(
        cancelled_at=cancelled_later["orders"]["cancelled_at"].fillna(pd.Timestamp("2024-11-02")),
        status="cancelled",
    )
    changed = features_at(inputs_from_frames(cancelled_later, AS_OF), CUTOFF, PARAMS).execute()
    assert feature_differences(expected, changed)[SEASONAL].sum() == 0
