"""Repeat purchases after an order, with and without a bad experience, on hand-worked tiny tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, clean_tables

from models.retention import (
    EXPERIENCES,
    experience_curves,
    order_experiences,
    repeat_curve,
    repeat_purchase_summary,
)


def test_order_experiences_on_the_clean_shop() -> None:
    # c1: o1 (Jan 5, on time, review 5), o2 (Mar 1, two days late, returned damaged, ticket resolved in 14 h).
    # c2: o3 (Feb 10, cancelled out of stock), o4 (Jun 20, promised Jul 5: not late at the as-of time Jul 1).
    orders = order_experiences(clean_tables(), AS_OF).set_index("order_id")
    assert orders.loc["o1", "days_to_next_order"] == 56.0  # Jan 5 -> Mar 1 (2024 is a leap year)
    assert np.isnan(orders.loc["o2", "days_to_next_order"])
    assert orders.loc["o3", "days_to_next_order"] == 131.0  # Feb 10 -> Jun 20; the cancelled o3 is followed
    assert orders.loc["o4", "follow_up_days"] == 11.0
    flagged = {kind: sorted(orders.index[orders[kind].astype(bool)]) for kind in EXPERIENCES}
    assert flagged == {
        "late_delivery": ["o2"],
        "wrong_item": [],
        "out_of_stock": ["o3"],
        "damaged": ["o2"],
        "low_review": [],
        "ticket": ["o2"],
    }
    assert orders["any_bad_experience"].tolist() == [False, True, True, False]
    assert orders.loc["o2", "ticket_resolved_fast"]
    assert orders["ticket_resolved_fast"].isna().sum() == 3  # missing where there is no ticket
    assert orders["loyalty_member"].tolist() == [True, True, False, False]
    assert orders["cancelled"].tolist() == [False, False, True, False]


def test_a_slow_ticket_is_not_fast_and_a_low_review_counts() -> None:
    tables = clean_tables()
    tables["tickets"].loc[0, "resolved_at"] = pd.Timestamp("2024-03-10")  # 3.6 days after opening
    tables["reviews"].loc[0, "review_score"] = 2
    orders = order_experiences(tables, AS_OF, low_review_max=2, recovery_days=2.0).set_index("order_id")
    assert not orders.loc["o2", "ticket_resolved_fast"]
    assert orders.loc["o1", "low_review"]


def test_an_experience_the_source_lacks_is_missing_not_false() -> None:
    tables = clean_tables()
    only_orders = {"orders": tables["orders"][["order_id", "customer_id", "ordered_at", "order_value"]]}
    orders = order_experiences(only_orders, AS_OF)
    for kind in (*EXPERIENCES, "loyalty_member", "ticket_resolved_fast"):
        assert orders[kind].isna().all(), kind
    assert not orders["any_bad_experience"].any()
    assert orders["days_to_next_order"].notna().sum() == 2  # nothing cancelled: o1 -> o2 and o3 -> o4


def test_orders_after_the_as_of_time_are_refused() -> None:
    with pytest.raises(ValueError, match="at or after as_of"):
        order_experiences(clean_tables(), pd.Timestamp("2024-06-01"))


def test_repeat_purchase_summary() -> None:
    # Non-cancelled: o1 50 (c1's first), o2 20 (c1 returning), o4 75.5 (c2's first; o3 was cancelled).
    summary = repeat_purchase_summary(order_experiences(clean_tables(), AS_OF))
    assert summary["customers"] == 2
    assert summary["repeat_customers"] == 1
    assert summary["repeat_rate"] == 0.5
    assert summary["revenue"] == 145.5
    assert summary["returning_revenue_share"] == pytest.approx(20 / 145.5)


def test_kaplan_meier_curve_counts_censored_orders_only_while_observed() -> None:
    # Ordered again after 1 and 3 days; censored (not followed by the as-of time) at 2 and 5 days.
    # S(1) = 3/4 (4 at risk, 1 event); S(3) = 3/4 * 1/2 (2 at risk: 3 and 5); share = 1 - S.
    orders = pd.DataFrame(
        {"days_to_next_order": [1.0, np.nan, 3.0, np.nan], "follow_up_days": [10.0, 2.0, 10.0, 5.0], "g": list("abab")}
    )
    curve = repeat_curve(orders, [0, 1, 2, 3, 4, 5])
    assert curve["ordered_again"].tolist() == [0.0, 0.25, 0.25, 0.625, 0.625, 0.625]
    assert set(curve["group"]) == {"all"} and (curve["orders"] == 4).all()
    by_group = repeat_curve(orders, [0, 2, 4], by="g").set_index(["group", "days"])["ordered_again"]
    assert by_group.loc["a"].tolist() == [0.0, 0.5, 1.0]  # events at 1 and 3
    assert by_group.loc["b"].tolist() == [0.0, 0.0, 0.0]  # never followed


def test_without_censoring_the_curve_is_the_plain_cumulative_share() -> None:
    to_next = np.array([5.0, 20.0, np.nan, 40.0, np.nan])
    orders = pd.DataFrame({"days_to_next_order": to_next, "follow_up_days": 100.0})
    curve = repeat_curve(orders, [10, 30, 60])
    assert curve["ordered_again"].tolist() == pytest.approx([1 / 5, 2 / 5, 3 / 5])


def test_days_must_increase() -> None:
    orders = pd.DataFrame({"days_to_next_order": [1.0], "follow_up_days": [2.0]})
    with pytest.raises(ValueError, match="increasing"):
        repeat_curve(orders, [3, 1])


def test_experience_curves_compare_each_kind_with_orders_that_went_fine() -> None:
    curves = experience_curves(order_experiences(clean_tables(), AS_OF), [0, 60, 200])
    assert set(curves["group"]) == {"none", "late_delivery", "damaged", "ticket", "out_of_stock"}
    fine = curves[curves["group"] == "none"].set_index("days")
    # o1 (followed after 56 days) and o4 (censored at 11 days).
    assert fine["ordered_again"].tolist() == [0.0, 1.0, 1.0]
    assert (fine["orders"] == 2).all()
    stock = curves[curves["group"] == "out_of_stock"].set_index("days")["ordered_again"]
    assert stock.tolist() == [0.0, 0.0, 1.0]  # o3, followed after 131 days
