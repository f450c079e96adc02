"""The core promise, as properties: at a cutoff t, no event at or after t changes a feature, and no event before t
changes a label; and the export wound back to t (every snapshot as it stood then) gives the same features, as the
export wound back to t + horizon gives the same labels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from conftest import AS_OF
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from features.basket import BASKET_COLUMNS
from features.build import LABEL, features_at, shared_tables
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import known_before

START = pd.Timestamp("2024-01-01")
CUTOFF = START + pd.Timedelta(days=100)
PARAMS = FeatureParams(horizon_days=30, active_window_days=90)
# timestamp column -> the column that says when the row itself happened (rows are deleted or added by it)
PRIMARY = {
    "customers": "signed_up_at",
    "orders": "ordered_at",
    "reviews": "reviewed_at",
    "tickets": "opened_at",
    "returns": "returned_at",
}
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)


def moment(draw: st.DrawFn, low: float, high: float) -> pd.Timestamp:
    """A time between low and high days after START, to the second; often just around the cutoff (day 100), where
    leaks live, and sometimes exactly on an edge."""
    near_cutoff = st.floats(max(low, 90.0), max(low, min(high, 110.0)))
    day = draw(st.sampled_from([low, high - 1e-9, 100.0]) | near_cutoff | st.floats(low, high - 1e-6))
    # To the second, and still within [low, high]: rounding 99.999999 days up would put a "before the cutoff" order
    # exactly at the cutoff, inside the label window.
    seconds = min(max(round(day * 86_400), math.ceil(low * 86_400)), math.floor(high * 86_400))
    return START + pd.Timedelta(seconds=seconds)


@st.composite
def shops(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    orders, reviews, tickets, returns = [], [], [], []
    # Cost per example is query compilation, not rows: big shops test more edge cases per example.
    for n in range(draw(st.integers(1, 40))):
        ordered = moment(draw, 0, 140)
        promised = ordered + pd.Timedelta(days=draw(st.integers(0, 8)))
        delivered = draw(st.none() | st.just(promised + pd.Timedelta(days=draw(st.integers(-3, 6)))))
        delivered = None if delivered is None else max(delivered, ordered)
        order_id = f"o{n}"
        status = draw(st.sampled_from(["delivered", "shipped", "cancelled", "returned"]))
        # A cancellation some hours or days after the order, sometimes at no known time.
        cancel_hours = draw(st.none() | st.integers(0, 400))
        cancelled = None if cancel_hours is None else ordered + pd.Timedelta(hours=cancel_hours)
        orders.append(
            {
                "order_id": order_id,
                "customer_id": draw(st.sampled_from(["a", "b", "c"])),
                "ordered_at": ordered,
                "order_value": float(draw(st.integers(0, 100))),
                "status": status,
                "cancel_reason": draw(st.sampled_from([None, "out_of_stock", "customer"])),
                "cancelled_at": cancelled if status == "cancelled" else None,
                "channel": draw(st.sampled_from(["web", "app"])),
                "payment_method": draw(st.sampled_from(["card", "invoice"])),
                "promised_delivery_at": promised,
                "delivered_at": delivered,
                "country": draw(st.sampled_from(["AT", "CY"])),
            }
        )
        # Reviews, tickets and returns come after their order (validation quarantines any that do not).
        after = moment(draw, (ordered - START) / pd.Timedelta(days=1), 160)
        if draw(st.booleans()):
            reviews.append({"order_id": order_id, "review_score": draw(st.integers(1, 5)), "reviewed_at": after})
        if draw(st.booleans()):
            resolved = draw(st.none() | st.just(after + pd.Timedelta(hours=draw(st.integers(0, 120)))))
            tickets.append(
                {
                    "ticket_id": f"t{n}",
                    "customer_id": orders[-1]["customer_id"],
                    "order_id": order_id,
                    "opened_at": after,
                    "resolved_at": resolved,
                    "reason": "late_delivery",
                }
            )
        if draw(st.booleans()):
            reason = draw(st.sampled_from(["damaged", "wrong_size"]))
            returns.append({"order_id": order_id, "returned_at": after, "reason": reason})
    return {
        "customers": pd.DataFrame([customer(draw, name) for name in "abc"]),
        "orders": pd.DataFrame(orders),
        "reviews": pd.DataFrame(reviews, columns=["order_id", "review_score", "reviewed_at"]),
        "tickets": pd.DataFrame(
            tickets, columns=["ticket_id", "customer_id", "order_id", "opened_at", "resolved_at", "reason"]
        ),
        "returns": pd.DataFrame(returns, columns=["order_id", "returned_at", "reason"]),
    }


LINE_COLUMNS = ["line_id", "order_id", "product_id", "category", "quantity", "unit_price"]


@st.composite
def shops_with_lines(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    """`shops` with what was bought: every order one to three lines, and each return of one of its order's lines or
    of the whole order. (Drawn after the shop, so `shops`' own examples stay what they were.)"""
    shop = draw(shops())
    lines = pd.DataFrame(
        [line for order in shop["orders"]["order_id"] for line in _lines(draw, order)], columns=LINE_COLUMNS
    )
    returns = shop["returns"].copy()
    returns["line_id"] = [
        draw(st.none() | st.sampled_from(lines.loc[lines["order_id"] == order, "line_id"].tolist()))
        for order in returns["order_id"]
    ]
    return {**shop, "returns": returns, "order_lines": lines}


def _lines(draw: st.DrawFn, order_id: str) -> list[dict[str, object]]:
    """One to three lines of a few products (often bought again), some without a category."""
    return [
        {
            "line_id": f"{order_id}-{n}",
            "order_id": order_id,
            "product_id": draw(st.sampled_from(["p1", "p2", "p3"])),
            "category": draw(st.sampled_from([None, "x", "y"])),
            "quantity": float(draw(st.integers(1, 3))),
            "unit_price": float(draw(st.integers(0, 50))),
        }
        for n in range(draw(st.integers(1, 3)))
    ]


def customer(draw: st.DrawFn, customer_id: str) -> dict[str, object]:
    """A customer who may have joined the loyalty programme (and left it) at any time, or has only the export's
    flag; the exported country is a snapshot of unknown age."""
    joined = draw(st.none() | st.just(moment(draw, 0, 150)))
    left = None if joined is None else draw(st.none() | st.just(moment(draw, (joined - START).days, 160)))
    return {
        "customer_id": customer_id,
        "signed_up_at": START,
        "loyalty_member": draw(st.booleans()) if joined is None else left is None,
        "loyalty_joined_at": joined,
        "loyalty_left_at": left,
        "country": draw(st.sampled_from(["AT", "CY"])),
    }


def change_the_future(draw: st.DrawFn, shop: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Move, drop or add events at or after the cutoff; leave everything before it as it was."""
    changed = {}
    for name, frame in shop.items():
        if name == "order_lines":
            continue
        frame = frame.copy()
        for column in [c for c in frame.columns if c.endswith("_at")]:
            for row in frame.index:
                value = frame.at[row, column]
                if pd.notna(value) and value >= CUTOFF and draw(st.booleans()):
                    frame.at[row, column] = moment(draw, 100, 200)
                elif column == "resolved_at" and pd.notna(value) and value >= CUTOFF:
                    frame.at[row, column] = pd.NaT  # still open at the cutoff either way
        future_rows = frame[PRIMARY[name]] >= CUTOFF
        drop = future_rows & np.array([draw(st.booleans()) for _ in range(len(frame))], dtype=bool)
        frame = frame[~drop]
        if name == "orders" and draw(st.booleans()):
            frame = pd.concat([frame, _new_order(draw, "z", moment(draw, 100, 200))], ignore_index=True)
        if name == "reviews" and len(shop["orders"]) and draw(st.booleans()):
            new = {
                "order_id": shop["orders"]["order_id"].iloc[0],
                "review_score": 1,
                "reviewed_at": moment(draw, 100, 200),
            }
            frame = pd.concat([frame, pd.DataFrame([new])], ignore_index=True)
        changed[name] = frame.reset_index(drop=True)
    if "order_lines" in shop:
        changed["order_lines"] = _change_future_lines(draw, shop, changed["orders"])
    return changed


def _change_future_lines(draw: st.DrawFn, shop: dict[str, pd.DataFrame], orders: pd.DataFrame) -> pd.DataFrame:
    """Drop or reprice lines of orders placed at or after the cutoff, and give new orders lines."""
    lines = shop["order_lines"].copy()
    future = lines["order_id"].isin(shop["orders"].loc[shop["orders"]["ordered_at"] >= CUTOFF, "order_id"])
    for row in lines.index[future]:
        if draw(st.booleans()):
            lines.at[row, "unit_price"] = float(draw(st.integers(0, 500)))
    drop = future & np.array([draw(st.booleans()) for _ in range(len(lines))], dtype=bool)
    new_orders = orders.loc[~orders["order_id"].isin(shop["orders"]["order_id"]), "order_id"]
    new_lines = [line for order_id in new_orders for line in _lines(draw, order_id)]
    return pd.concat([lines[~drop], pd.DataFrame(new_lines, columns=LINE_COLUMNS)], ignore_index=True)


def change_the_past(draw: st.DrawFn, shop: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Move, recolour, drop or add orders before the cutoff; leave the label window as it was."""
    orders = shop["orders"].copy()
    for row in orders.index:
        if orders.at[row, "ordered_at"] < CUTOFF and draw(st.booleans()):
            orders.at[row, "ordered_at"] = moment(draw, 0, 100 - 1e-6)
            orders.at[row, "status"] = draw(st.sampled_from(["delivered", "cancelled"]))
    past = orders["ordered_at"] < CUTOFF
    drop = past & np.array([draw(st.booleans()) for _ in range(len(orders))], dtype=bool)
    orders = orders[~drop]
    if draw(st.booleans()):
        orders = pd.concat([orders, _new_order(draw, "a", moment(draw, 20, 100 - 1e-6))], ignore_index=True)
    return {**shop, "orders": orders.reset_index(drop=True)}


def _new_order(draw: st.DrawFn, customer: str, when: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "order_id": f"new{draw(st.integers(0, 10**6))}",
                "customer_id": customer,
                "ordered_at": when,
                "order_value": 5.0,
                "status": "delivered",
                "cancel_reason": None,
                "channel": "web",
                "payment_method": "card",
                "promised_delivery_at": when + pd.Timedelta(days=2),
                "delivered_at": when + pd.Timedelta(days=1),
                "country": "CY",
            }
        ]
    )


def at_cutoff(
    shop: dict[str, pd.DataFrame],
    available: frozenset[str] | None = None,
    as_of: pd.Timestamp = AS_OF,
    line_flags: bool = True,
    in_memory_orders: bool = False,
) -> pd.DataFrame:
    """The features at CUTOFF; without `line_flags`, by the one-cutoff basket part (scoring's); with
    `in_memory_orders`, from the order summary computed in memory (the features stage's)."""
    inputs = inputs_from_frames(shop, as_of, available)
    shared = shared_tables(inputs, PARAMS, line_flags=line_flags, in_memory_orders=in_memory_orders)
    table = features_at(inputs, CUTOFF, PARAMS, shared).execute()
    return table.sort_values("customer_id").reset_index(drop=True)


def schema(shop: dict[str, pd.DataFrame]) -> frozenset[str]:
    """Which tables and columns hold data: a property of the source, held fixed while events change (as scoring
    holds it at what training saw)."""
    return inputs_from_frames(shop, AS_OF).available


@SETTINGS
@given(data=st.data())
def test_events_at_or_after_the_cutoff_change_no_feature(data: st.DataObject) -> None:
    shop = data.draw(shops())
    before = at_cutoff(shop).drop(columns=LABEL)
    after = at_cutoff(change_the_future(data.draw, shop), schema(shop)).drop(columns=LABEL)
    pd.testing.assert_frame_equal(before, after, check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_events_before_the_cutoff_change_no_label(data: st.DataObject) -> None:
    shop = data.draw(shops())
    before = at_cutoff(shop).set_index("customer_id")[LABEL]
    after = at_cutoff(change_the_past(data.draw, shop), schema(shop)).set_index("customer_id")[LABEL]
    common = before.index.intersection(after.index)
    pd.testing.assert_series_equal(before[common], after[common], check_dtype=False)


def test_an_event_known_only_by_its_day_counts_from_the_end_of_that_day() -> None:
    """A review dated 2024-03-10 (no time) may have been written at 23:59: validation stores it at the end of the
    day, so a cutoff at the start of that day cannot see it, and the next day's cutoff can."""
    from conftest import as_sources, clean_tables

    from pipelines.validation.run import validate_tables

    tables = clean_tables()
    # Reviews known since January (so the feature is available, not missing), and one known only by its day.
    tables["reviews"] = pd.DataFrame(
        {"order_id": ["o1", "o2"], "review_score": ["5", "1"], "reviewed_at": ["2024-01-09", "2024-03-10"]}
    )
    accepted = validate_tables(as_sources(tables), AS_OF).accepted
    assert accepted["reviews"]["reviewed_at"].iloc[1] == pd.Timestamp("2024-03-10 23:59:59.999999")
    inputs = inputs_from_frames(accepted, AS_OF)
    params = FeatureParams()

    def low_reviews(cutoff: str) -> float:
        rows = features_at(inputs, pd.Timestamp(cutoff), params).execute().set_index("customer_id")
        return float(rows.loc["c1", "low_review_total"])

    assert low_reviews("2024-03-10") == 0
    assert low_reviews("2024-03-11") == 1


@SETTINGS
@given(data=st.data())
def test_the_export_wound_back_to_the_cutoff_gives_the_same_features(data: st.DataObject) -> None:
    shop = data.draw(shops())
    full = at_cutoff(shop).drop(columns=LABEL)
    # Which columns hold data is held at the full export's, as scoring holds it at what training saw: an export
    # taken at the cutoff may hold no delivered_at yet (every parcel still on its way), and an empty column reads
    # as one the shop does not keep.
    rewound = at_cutoff(known_before(shop, CUTOFF), schema(shop), as_of=CUTOFF).drop(columns=LABEL)
    pd.testing.assert_frame_equal(full, rewound, check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_lines_and_returns_at_or_after_the_cutoff_change_no_basket_feature(data: st.DataObject) -> None:
    shop = data.draw(shops_with_lines())
    before = at_cutoff(shop)[["customer_id", *BASKET_COLUMNS]]
    after = at_cutoff(change_the_future(data.draw, shop), schema(shop))[["customer_id", *BASKET_COLUMNS]]
    pd.testing.assert_frame_equal(before, after, check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_the_one_cutoff_basket_gives_the_line_flags_basket_and_sees_no_future(data: st.DataObject) -> None:
    """Scoring's basket part (the lines before the cutoff grouped) is the flags' to the bit, and as blind to what
    happens at or after the cutoff."""
    shop = data.draw(shops_with_lines())
    flags = at_cutoff(shop)
    grouped = at_cutoff(shop, line_flags=False)
    pd.testing.assert_frame_equal(flags, grouped, check_exact=True)
    after = at_cutoff(change_the_future(data.draw, shop), schema(shop), line_flags=False)
    pd.testing.assert_frame_equal(
        grouped[["customer_id", *BASKET_COLUMNS]], after[["customer_id", *BASKET_COLUMNS]], check_dtype=False
    )


@SETTINGS
@given(data=st.data())
def test_the_in_memory_order_summary_gives_the_engine_s_features_and_sees_no_future(data: st.DataObject) -> None:
    """The features stage's order summary (computed in memory) gives every feature the engine's does (floats within
    rounding: other orders of additions), and is as blind to what happens at or after the cutoff. The shops'
    cancellations fall around the cutoff, so some are pending at it (placed before, cancelled from it on)."""
    shop = data.draw(shops())
    engine = at_cutoff(shop)
    in_memory = at_cutoff(shop, in_memory_orders=True)
    pd.testing.assert_frame_equal(engine, in_memory, check_exact=False, rtol=1e-12, atol=0)
    after = at_cutoff(change_the_future(data.draw, shop), schema(shop), in_memory_orders=True)
    pd.testing.assert_frame_equal(in_memory.drop(columns=LABEL), after.drop(columns=LABEL), check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_the_export_wound_back_to_the_cutoff_gives_the_same_basket_features(data: st.DataObject) -> None:
    shop = data.draw(shops_with_lines())
    full = at_cutoff(shop)[["customer_id", *BASKET_COLUMNS]]
    rewound = at_cutoff(known_before(shop, CUTOFF), as_of=CUTOFF)[["customer_id", *BASKET_COLUMNS]]
    pd.testing.assert_frame_equal(full, rewound, check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_the_export_wound_back_to_the_window_s_end_gives_the_same_labels(data: st.DataObject) -> None:
    shop = data.draw(shops())
    window_end = CUTOFF + pd.Timedelta(days=PARAMS.horizon_days)
    full = at_cutoff(shop)[LABEL]
    rewound = at_cutoff(known_before(shop, window_end), as_of=window_end)[LABEL]
    pd.testing.assert_series_equal(full, rewound, check_dtype=False)
