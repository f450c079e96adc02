"""The shortcuts that make many cutoffs fast give the features of the direct computation, on a random shop with
what the shortcuts must get right: cancellations known at order time and cancellations known weeks later (pending
at some cutoffs), orders at the same instant, missing channels and payment methods, and a column with more values
than `order_summary` counts one by one.

The direct computation is the code before the shortcuts: every cutoff chains the gaps of all its qualifying orders
(`_chained_gaps`), groups orders by customer and value for the most common values, and joins returns to orders.
"""

from __future__ import annotations

from dataclasses import replace

import ibis
import numpy as np
import pandas as pd
import pytest

import features.orders
from features.build import features_at, shared_tables
from features.common import at, cancelled_before, orders_before
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs, inputs_from_frames
from features.orders import MAX_COUNTED_LEVELS, _chained_gaps, order_facts, orders_known_at

AS_OF = pd.Timestamp("2024-07-01")
CUTOFFS = [pd.Timestamp(day) for day in ("2023-09-01", "2023-12-20", "2024-02-01", "2024-03-15", "2024-04-01")]
PARAMS = FeatureParams(horizon_days=60)


def random_shop(seed: int = 3, customers: int = 60, orders: int = 900) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:02d}" for i in range(customers)]
    # Every sixth day at 00:00 or 12:00 only: many orders of a customer at the same instant.
    ordered_at = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 90, orders) * 6, "D")
    ordered_at += pd.to_timedelta(rng.choice([0, 12], orders), "h")
    status = rng.choice(
        np.array(["delivered", "cancelled", "returned", "shipped", None], dtype=object),
        orders,
        p=[0.5, 0.25, 0.1, 0.1, 0.05],
    )
    cancelled = status == "cancelled"
    # Half the cancellations carry no time (known when ordered); the others become known 0-40 days later.
    later = cancelled & (rng.random(orders) < 0.5)
    cancelled_at = pd.Series(pd.NaT, index=range(orders), dtype="datetime64[ns]")
    cancelled_at[later] = ordered_at[later] + pd.to_timedelta(rng.integers(0, 40 * 24, later.sum()), "h")
    promised = ordered_at + pd.to_timedelta(rng.integers(2, 6, orders), "D")
    delivered = promised + pd.to_timedelta(rng.integers(-2, 4, orders), "D")
    order_ids = [f"o{i:04d}" for i in range(orders)]
    frame = pd.DataFrame(
        {
            "order_id": order_ids,
            "customer_id": rng.choice(ids, orders),
            "ordered_at": ordered_at,
            "order_value": rng.choice([0.0, 9.5, 20.0, 35.25, 120.0], orders),
            "status": status,
            "cancel_reason": pd.Series(rng.choice(["out_of_stock", "customer"], orders)).where(cancelled),
            "cancelled_at": cancelled_at,
            "channel": rng.choice(np.array(["web", "app", "store", None], dtype=object), orders),
            "payment_method": rng.choice(np.array(["card", "invoice", "wallet", None], dtype=object), orders),
            # More countries than order_summary counts one by one: the grouping path.
            "country": rng.choice([f"K{i:02d}" for i in range(MAX_COUNTED_LEVELS + 4)], orders),
            "promised_delivery_at": promised,
            "delivered_at": pd.Series(delivered).where(~cancelled & (rng.random(orders) < 0.9)),
        }
    )
    returned = frame[frame["status"] == "returned"]
    returns = pd.DataFrame(
        {
            "order_id": returned["order_id"],
            "returned_at": returned["ordered_at"] + pd.to_timedelta(rng.integers(5, 20, len(returned)), "D"),
            "reason": rng.choice(["damaged", "changed_mind"], len(returned)),
        }
    )
    reviewed = frame.sample(frac=0.3, random_state=seed)
    reviews = pd.DataFrame(
        {
            "order_id": reviewed["order_id"],
            "review_score": rng.integers(1, 6, len(reviewed)),
            "reviewed_at": reviewed["ordered_at"] + pd.to_timedelta(rng.integers(3, 10, len(reviewed)), "D"),
        }
    )
    complained = frame.sample(frac=0.1, random_state=seed + 1)
    tickets = pd.DataFrame(
        {
            "ticket_id": [f"t{i}" for i in range(len(complained))],
            "customer_id": complained["customer_id"],
            "order_id": complained["order_id"],
            "opened_at": complained["ordered_at"] + pd.to_timedelta(rng.integers(1, 8, len(complained)), "D"),
            "resolved_at": complained["ordered_at"] + pd.to_timedelta(rng.integers(8, 12, len(complained)), "D"),
            "reason": "other",
        }
    )
    shop_customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signed_up_at": pd.Timestamp("2022-06-01") + pd.to_timedelta(rng.integers(0, 400, customers), "D"),
            "loyalty_member": rng.random(customers) < 0.4,
            "country": rng.choice(["SE", "NO"], customers),
        }
    )
    return {"customers": shop_customers, "orders": frame, "reviews": reviews, "tickets": tickets, "returns": returns}


@pytest.fixture(scope="module")
def inputs() -> FeatureInputs:
    return inputs_from_frames(random_shop(), AS_OF)


def chained_at(facts: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """The gaps as the code before the shortcut chained them: one window over all orders placed before the cutoff."""
    placed = orders_before(facts, cutoff)
    placed = placed.mutate(qualifying=~cancelled_before(placed.cancel_known_at, at(cutoff)))
    return _chained_gaps(placed).drop("settled_gap_days")


def test_the_shop_has_what_the_shortcuts_must_handle(inputs: FeatureInputs) -> None:
    orders = inputs.orders.execute()
    pending = [
        ((orders["ordered_at"] < c) & (orders["cancelled_at"] >= c)).sum() for c in CUTOFFS
    ]  # cancelled only after the cutoff
    assert min(pending) > 0
    assert orders.duplicated(["customer_id", "ordered_at"]).sum() > 15
    levels = shared_tables(inputs, PARAMS).levels
    assert set(levels) == {"channel", "payment_method"}  # country has too many values: grouped as before


def test_gaps_from_settled_chains_equal_gaps_chained_at_each_cutoff(inputs: FeatureInputs) -> None:
    facts = order_facts(inputs.orders)
    for cutoff in CUTOFFS:
        fast = orders_known_at(facts, cutoff).execute().set_index("order_id").sort_index()
        direct = chained_at(facts, cutoff).execute().set_index("order_id").sort_index()
        pd.testing.assert_frame_equal(fast, direct[fast.columns], check_exact=True)
        assert fast["gap_days"].notna().sum() > 100


def test_features_equal_those_of_the_direct_computation(inputs: FeatureInputs, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_equal_to_direct(inputs, CUTOFFS, monkeypatch)


def test_a_column_with_one_value_counts_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """One level: no greatest() of one count (Spark refuses it), the same features."""
    frames = random_shop(seed=5)
    methods = frames["orders"]["payment_method"]
    frames["orders"]["payment_method"] = methods.where(methods.isna(), "card")
    inputs = inputs_from_frames(frames, AS_OF)
    assert shared_tables(inputs, PARAMS).levels["payment_method"] == ("card",)
    assert_equal_to_direct(inputs, CUTOFFS[-2:], monkeypatch)


def assert_equal_to_direct(inputs: FeatureInputs, cutoffs: list[pd.Timestamp], monkeypatch: pytest.MonkeyPatch) -> None:
    shared = shared_tables(inputs, PARAMS, cache=True)
    fast = [features_at(inputs, cutoff, PARAMS, shared).execute() for cutoff in cutoffs]
    # The code before: gaps chained per cutoff, most common values grouped, returns joined to orders per cutoff.
    with monkeypatch.context() as patched:
        patched.setattr(features.orders, "orders_known_at", chained_at)
        before = replace(shared_tables(inputs, PARAMS), levels={}, returns=None)
        for cutoff, table in zip(cutoffs, fast, strict=True):
            direct = features_at(inputs, cutoff, PARAMS, before).execute()
            key = ["customer_id"]
            pd.testing.assert_frame_equal(
                table.sort_values(key, ignore_index=True), direct.sort_values(key, ignore_index=True), rtol=1e-12
            )
            assert len(table) > 20 and table["main_channel"].notna().any() and table["gap_std_days"].notna().any()
