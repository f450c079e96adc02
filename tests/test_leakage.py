"""The notebooks' leakage check: the tables as they stood before a cutoff, and the feature comparison."""

from __future__ import annotations

import pandas as pd
from conftest import AS_OF, clean_tables

from features.build import features_at
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, known_before

CUTOFF = pd.Timestamp("2024-03-05")
PARAMS = FeatureParams(horizon_days=30, active_window_days=90)


def test_known_before_deletes_later_rows_blanks_later_times_and_winds_the_status_back() -> None:
    known = known_before(clean_tables(), CUTOFF)
    orders = known["orders"].set_index("order_id")
    assert list(orders.index) == ["o1", "o2", "o3"]  # o4 is placed on Jun 20
    # o2 was delivered on Mar 6 and returned on Mar 10: at the cutoff it was on its way.
    assert pd.isna(orders.loc["o2", "delivered_at"])
    assert orders.loc["o2", "status"] == "shipped"
    assert orders.loc["o3", "status"] == "cancelled"
    assert orders.loc["o1", "delivered_at"] == pd.Timestamp("2024-01-07")
    assert len(known["reviews"]) == 1  # Jan 9
    assert known["tickets"].empty and known["returns"].empty  # opened Mar 6, returned Mar 10
    assert len(known["customers"]) == 2


def test_a_delivered_order_returned_after_the_cutoff_is_delivered_at_the_cutoff() -> None:
    known = known_before(clean_tables(), pd.Timestamp("2024-03-08"))
    orders = known["orders"].set_index("order_id")
    assert orders.loc["o2", "status"] == "delivered"
    assert orders.loc["o2", "delivered_at"] == pd.Timestamp("2024-03-06")
    assert known["tickets"].loc[0, "resolved_at"] == pd.Timestamp("2024-03-07")  # before the cutoff


def test_features_on_the_truncated_tables_are_identical() -> None:
    full = inputs_from_frames(clean_tables(), AS_OF)
    expected = features_at(full, CUTOFF, PARAMS).execute()
    truncated = inputs_from_frames(known_before(clean_tables(), CUTOFF), CUTOFF, full.available)
    actual = features_at(truncated, CUTOFF, PARAMS).execute()
    differences = feature_differences(expected, actual)
    assert len(expected) == 2 and differences.sum() == 0, differences[differences > 0]


def test_feature_differences_counts_changed_values_and_missing_rows() -> None:
    expected = features_at(inputs_from_frames(clean_tables(), AS_OF), CUTOFF, PARAMS).execute()
    actual = expected.copy()
    actual.loc[0, "orders_total"] = actual.loc[0, "orders_total"] + 1
    actual.loc[1, "main_channel"] = "phone"
    differences = feature_differences(expected, actual.iloc[:2])
    assert differences["orders_total"] == 1 and differences["main_channel"] == 1
    assert differences.drop(["orders_total", "main_channel"]).sum() == 0
    assert feature_differences(expected, actual.iloc[:1])["rows_only_in_one"] == 1
