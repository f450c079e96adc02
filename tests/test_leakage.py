"""The notebooks' leakage check: the tables as they stood before a cutoff, and the feature comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from conftest import AS_OF, clean_tables

from features.build import features_at
from features.cutoffs import FeatureParams, cutoff_schedule, label_observed
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, known_before, truncation_differences

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


def test_truncation_differences_with_a_cancellation_after_the_cutoff_and_one_after_the_window() -> None:
    """o3 (c2, 02-10) cancelled on 03-20, after the cutoff; o4 (c2, 06-20) in the window [06-05, 07-05) cancelled
    after it: features at the cutoff and labels at the window's end come out the same from the data known then."""
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(
        status=["delivered", "returned", "cancelled", "cancelled"],
        cancelled_at=[pd.NaT, pd.NaT, pd.Timestamp("2024-03-20"), pd.Timestamp("2024-06-30")],
    )
    assert truncation_differences(frames, CUTOFF, PARAMS, AS_OF).sum() == 0
    window = FeatureParams(horizon_days=25)
    differences = truncation_differences(frames, pd.Timestamp("2024-06-05"), window, AS_OF)
    assert differences.sum() == 0, differences[differences > 0]


def test_the_synthetic_shop_at_its_test_cutoff_is_the_same_from_data_cut_there(shop: dict[str, Path]) -> None:
    params = yaml.safe_load(shop["params"].read_text())["features"]
    feature_params = FeatureParams.from_dict({k: v for k, v in params.items() if k != "strategy"})
    as_of = pd.Timestamp(json.loads(shop["report"].read_text())["as_of"])
    tables = {path.stem: pd.read_parquet(path) for path in sorted(shop["validated"].glob("*.parquet"))}
    cutoffs = cutoff_schedule(pd.Timestamp(feature_params.first_cutoff), feature_params.every_days, as_of)
    test_cutoff = max(c for c in cutoffs if label_observed(c, feature_params.horizon_days, as_of))
    assert tables["orders"]["cancelled_at"].notna().any() and tables["customers"]["loyalty_joined_at"].notna().any()
    differences = truncation_differences(tables, test_cutoff, feature_params, as_of)
    assert differences.sum() == 0, differences[differences > 0]
