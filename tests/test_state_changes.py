"""Export-time snapshots at earlier cutoffs: an order's status, loyalty membership and a delivery without a time,
each read as it stood at the cutoff (see conftest.clean_tables and test_features.py for the shop's story)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import AS_OF, clean_tables

from features.build import features_at
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, known_before

CUTOFF = pd.Timestamp("2024-03-08")
ts = pd.Timestamp


def build(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp = CUTOFF) -> pd.DataFrame:
    table = features_at(inputs_from_frames(frames, AS_OF), cutoff, FeatureParams(horizon_days=30)).execute()
    return table.set_index("customer_id").sort_index()


def assert_same_as_rewound(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> None:
    """Features from the full export equal those from the export wound back to the cutoff."""
    full = inputs_from_frames(frames, AS_OF)
    rewound = inputs_from_frames(known_before(frames, cutoff), cutoff, full.available)
    params = FeatureParams(horizon_days=30)
    differences = feature_differences(
        features_at(full, cutoff, params).execute(), features_at(rewound, cutoff, params).execute()
    )
    assert differences.sum() == 0, differences[differences > 0]


def o2_cancelled_on(when: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """c1's o2 (placed 03-01, promised 03-04) cancelled by the shop on `when`, never delivered nor returned."""
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(
        status=["delivered", "cancelled", "cancelled", "shipped"],
        cancel_reason=[None, "out_of_stock", "out_of_stock", None],
        cancelled_at=[pd.NaT, when, ts("2024-02-10 02:00"), pd.NaT],
        delivered_at=[ts("2024-01-07"), pd.NaT, pd.NaT, pd.NaT],
    )
    frames["returns"] = frames["returns"].iloc[:0]
    return frames


def test_an_order_cancelled_after_the_cutoff_is_an_order_at_the_cutoff() -> None:
    c1 = build(o2_cancelled_on(ts("2024-03-20"))).loc["c1"]
    assert (c1["orders_total"], c1["days_since_last_order"], c1["cancelled_share"]) == (2, 7.0, 0.0)
    assert c1["retailer_cancellation_total"] == 0
    # on its way and late since 03-04 at the cutoff
    assert (c1["late_delivery_total"], c1["late_days_max_365d"]) == (1, 4.0)
    assert_same_as_rewound(o2_cancelled_on(ts("2024-03-20")), CUTOFF)


def test_the_cancellation_counts_from_its_time() -> None:
    c1 = build(o2_cancelled_on(ts("2024-03-20")), ts("2024-03-21")).loc["c1"]
    assert (c1["orders_total"], c1["days_since_last_order"], c1["cancelled_share"]) == (1, 76.0, 0.5)
    assert c1["retailer_cancellation_total"] == 1
    assert c1["days_since_last_bad_experience"] == 1.0  # the cancellation, on 03-20
    # late from 03-04 until it was cancelled on 03-20
    assert (c1["late_delivery_total"], c1["late_days_max_365d"]) == (1, 16.0)


def test_an_order_cancelled_before_its_promised_date_was_never_late() -> None:
    c1 = build(o2_cancelled_on(ts("2024-03-02")), ts("2024-03-21")).loc["c1"]
    assert c1["late_delivery_total"] == 0 and c1["retailer_cancellation_total"] == 1


def test_a_cancellation_without_a_time_counts_from_the_order_time() -> None:
    """The export's status is all there is: a snapshot, as the feature dictionary says."""
    c1 = build(o2_cancelled_on(pd.NaT), ts("2024-03-21")).loc["c1"]
    assert (c1["orders_total"], c1["retailer_cancellation_total"], c1["late_delivery_total"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("cancelled_at", "churned"),
    [(ts("2024-06-28"), 0), (ts("2024-06-22"), 1), (pd.NaT, 1)],
    ids=["after the window: came back", "within the window: did not", "no time: the status decides"],
)
def test_a_return_counts_unless_cancelled_by_the_end_of_the_window(cancelled_at: pd.Timestamp, churned: int) -> None:
    """c2's o4 (06-20) is their only order in [05-25, 06-24)."""
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(
        status=["delivered", "returned", "cancelled", "cancelled"],
        cancelled_at=[pd.NaT, pd.NaT, ts("2024-02-10 02:00"), cancelled_at],
    )
    assert build(frames, ts("2024-05-25")).loc["c2", "churned"] == churned


def with_loyalty(joined: list[pd.Timestamp], left: list[pd.Timestamp]) -> dict[str, pd.DataFrame]:
    frames = clean_tables()
    frames["customers"] = frames["customers"].assign(loyalty_joined_at=joined, loyalty_left_at=left)
    return frames


def test_a_member_who_joined_after_the_cutoff_is_not_one_at_it() -> None:
    # c1 (a member in the export) joined on 04-01; c2 (not a member in the export) was one from 01-15 to 03-01
    frames = with_loyalty([ts("2024-04-01"), ts("2024-01-15")], [pd.NaT, ts("2024-03-01")])
    at_cutoff = build(frames)["loyalty_member"]
    assert not at_cutoff["c1"] and not at_cutoff["c2"]
    assert bool(build(frames, ts("2024-04-02")).loc["c1", "loyalty_member"])
    assert bool(build(frames, ts("2024-02-20")).loc["c2", "loyalty_member"])
    assert_same_as_rewound(frames, CUTOFF)
    assert_same_as_rewound(frames, ts("2024-02-20"))


def test_without_joining_times_the_flag_is_the_export_s() -> None:
    frames = with_loyalty([pd.NaT, pd.NaT], [pd.NaT, pd.NaT])
    assert build(frames)["loyalty_member"].tolist() == [True, False]


def test_a_delivered_status_without_a_time_leaves_the_order_on_its_way() -> None:
    """o2 says delivered but not when: at every cutoff it is as late as a parcel still on its way."""
    frames = clean_tables()
    frames["orders"].loc[1, ["status", "delivered_at"]] = ["delivered", pd.NaT]
    frames["returns"] = frames["returns"].iloc[:0]
    c1 = build(frames).loc["c1"]
    assert (c1["late_delivery_total"], c1["late_days_max_365d"]) == (1, 4.0)
    assert_same_as_rewound(frames, CUTOFF)


def test_rewinding_winds_back_cancellations_and_membership() -> None:
    known = known_before(o2_cancelled_on(ts("2024-03-20")), CUTOFF)
    o2 = known["orders"].set_index("order_id").loc["o2"]
    assert o2["status"] == "shipped" and pd.isna(o2["cancel_reason"]) and pd.isna(o2["cancelled_at"])
    o3 = known["orders"].set_index("order_id").loc["o3"]
    assert o3["status"] == "cancelled" and o3["cancelled_at"] == ts("2024-02-10 02:00")
    customers = known_before(with_loyalty([ts("2024-04-01"), ts("2024-01-15")], [pd.NaT, ts("2024-03-20")]), CUTOFF)
    members = customers["customers"].set_index("customer_id")
    assert members["loyalty_member"].tolist() == [False, True]
    assert members["loyalty_joined_at"].isna().tolist() == [True, False]
    assert members["loyalty_left_at"].isna().all()


def test_what_the_source_provides_is_decided_by_what_it_had_recorded_before_the_cutoff() -> None:
    """The shop's first review (01-09), ticket (03-06), return (03-10) and shop cancellation (o3 on 02-10, here
    cancelled on 02-12) come after 01-08: an export of that day would not provide them, so they are unknown, not
    zero, at that cutoff."""
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(cancelled_at=[pd.NaT, pd.NaT, ts("2024-02-12"), pd.NaT])
    cutoff = ts("2024-01-08")
    c1 = build(frames, cutoff).loc["c1"]
    unknown = ["low_review_total", "review_score_mean", "complaint_total", "tickets_open", "returns_total",
               "retailer_cancellation_total"]  # fmt: skip
    assert c1[unknown].isna().all()
    assert c1["late_delivery_total"] == 0  # o1 was promised for 01-08 and delivered on 01-07: known
    rewound = inputs_from_frames(known_before(frames, cutoff), cutoff)  # its own view of what it provides
    params = FeatureParams(horizon_days=30)
    expected = features_at(inputs_from_frames(frames, AS_OF), cutoff, params).execute()
    differences = feature_differences(expected, features_at(rewound, cutoff, params).execute())
    assert differences.sum() == 0, differences[differences > 0]
