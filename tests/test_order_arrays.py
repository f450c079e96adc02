"""The order summary computed in memory (`OrdersInMemory`, the features stage's) is the engine's (`order_summary`):
worked by hand where a cancellation is pending at the cutoff, and compared at many cutoffs of a generated shop,
with cancellations known by time or only by the export's status."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.build import SharedTables, shared_tables
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.orders import order_summary
from pipelines.sources.synthetic import SyntheticShopParams, generate_shop

PARAMS = FeatureParams(horizon_days=90, active_window_days=365)
# Sums and means add in another order than the engine's.
ROUNDED = ("invoice_share", "value_sum", "value_mean", "value_365d", "value_90d", "value_prev_90d", "gap_mean_days")
ts = pd.Timestamp


def summaries(shared: SharedTables, cutoff: pd.Timestamp) -> tuple[pa.Table, pa.Table]:
    """The engine's summary and the in-memory one at the cutoff, each sorted by customer."""
    assert shared.orders_in_memory is not None
    engine = order_summary(shared.orders, cutoff, shared.levels).to_pyarrow().sort_by("customer_id")
    return engine, shared.orders_in_memory.summary_at(cutoff).sort_by("customer_id")


def assert_same(engine: pa.Table, in_memory: pa.Table, cutoff: pd.Timestamp) -> None:
    assert in_memory.schema == engine.schema
    assert in_memory.num_rows == engine.num_rows, cutoff
    for column in engine.column_names:
        want = engine.column(column).to_pandas()
        have = in_memory.column(column).to_pandas()
        if column in ROUNDED:
            np.testing.assert_allclose(have, want, rtol=1e-12, atol=0, err_msg=f"{column} at {cutoff}")
        elif column == "gap_std_days":
            # Within 1e-12 of the gaps' size: where gaps hardly vary, the engine's streaming update loses digits
            # that the in-memory sums keep, so relative to the deviation itself the two may differ by more.
            assert (have.isna() == want.isna()).all(), f"{column} at {cutoff}"
            scale = engine.column("gap_mean_days").to_pandas()
            difference = (have - want).abs()
            assert (difference.isna() | (difference <= 1e-12 * scale)).all(), f"{column} at {cutoff}"
        else:
            pd.testing.assert_series_equal(have, want, obj=f"{column} at {cutoff}")


def test_a_pending_cancellation_counts_until_the_cutoff_it_is_known_at() -> None:
    """c1 orders on days 0, 10 and 20 of January; the day-10 order is cancelled on the 25th. On the 22nd all three
    qualify (gaps 10 and 10); on the 30th two do (one gap of 20 days, no spread); the cancelled order stays placed."""
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["c1", "c1", "c1"],
            "ordered_at": [ts("2024-01-01"), ts("2024-01-11"), ts("2024-01-21")],
            "order_value": [10.0, 30.0, 20.0],
            "status": ["delivered", "cancelled", "delivered"],
            "cancelled_at": [pd.NaT, ts("2024-01-25"), pd.NaT],
            "payment_method": ["invoice", None, "card"],
        }
    )
    shared = shared_tables(inputs_from_frames({"orders": orders}, ts("2024-03-01")), PARAMS, in_memory_orders=True)
    for cutoff, expected in [
        (ts("2024-01-22"), {"orders_total": 3, "value_max": 30.0, "gap_mean_days": 10.0, "gap_std_days": 0.0}),
        (ts("2024-01-30"), {"orders_total": 2, "value_max": 20.0, "gap_mean_days": 20.0, "gap_std_days": None}),
    ]:
        engine, in_memory = summaries(shared, cutoff)
        assert_same(engine, in_memory, cutoff)
        row = in_memory.to_pylist()[0]
        assert {name: row[name] for name in expected} == expected
        assert (row["orders_placed"], row["invoice_share"], row["last_order_at"]) == (3, 0.5, ts("2024-01-21"))


@pytest.fixture(scope="module")
def generated() -> dict[str, pd.DataFrame]:
    params = SyntheticShopParams(n_customers=2500, dirty_share=0.0, seed=5)
    tables = generate_shop(params).tables
    orders = tables["orders"].copy()
    orders.loc[orders.index % 11 == 0, "payment_method"] = None  # the invoice share counts paid orders only
    return {**tables, "orders": orders}


@pytest.mark.parametrize("cancel_times", [True, False], ids=["cancelled_at", "status_only"])
def test_the_in_memory_summary_is_the_engine_s_at_every_cutoff(
    generated: dict[str, pd.DataFrame], cancel_times: bool
) -> None:
    """Monthly cutoffs, cutoffs exactly at an order's and at a cancellation's time, cutoffs whose windows (30, 90,
    180 and 365 days) start exactly at an order, and one before the first order; some of them with a cancellation
    pending (placed before the cutoff, known only from it on)."""
    tables = generated if cancel_times else {**generated, "orders": generated["orders"].drop(columns="cancelled_at")}
    orders = tables["orders"]
    inputs = inputs_from_frames(tables, ts(SyntheticShopParams().end_date))
    shared = shared_tables(inputs, PARAMS, in_memory_orders=True)
    exact = [orders["ordered_at"].iloc[100], orders["ordered_at"].max(), orders["ordered_at"].min()]
    exact += [orders["ordered_at"].iloc[200] + pd.Timedelta(days=days) for days in (30, 90, 180, 365)]
    if cancel_times:
        exact += list(orders["cancelled_at"].dropna().iloc[:3])
    cutoffs = [*pd.date_range("2023-01-01", "2026-01-01", freq="MS"), *exact, ts("2020-01-01")]
    pending = 0
    for cutoff in cutoffs:
        engine, in_memory = summaries(shared, cutoff)
        assert_same(engine, in_memory, cutoff)
        if cancel_times:
            pending += int(((orders["ordered_at"] < cutoff) & (orders["cancelled_at"] >= cutoff)).sum())
    assert pending > 0 or not cancel_times
