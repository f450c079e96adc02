"""The cutoff-independent tables every cutoff's query shares, and the one aggregation of orders per customer, on
the hand-worked shop of conftest.clean_tables (see test_features.py for the story).

c1: o1 2024-01-05 delivered, on time, reviewed 5; o2 2024-03-01 returned as damaged (03-10), promised 03-04 and
delivered 03-06 (late from 03-04), ticket opened 03-06 10:00. c2: o3 2024-02-10 cancelled out of stock (known at
once); o4 2024-06-20 shipped, promised 07-05 and not delivered (late from 07-05).
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest
from conftest import AS_OF, clean_tables

from features.build import features_at, shared_tables
from features.common import latest
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.labels import is_active, population
from features.orders import order_facts, order_summary, orders_known_at

CUTOFF = pd.Timestamp("2024-03-08")
PARAMS = FeatureParams(horizon_days=30)


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    return order_facts(inputs.orders, shared_tables(inputs, PARAMS).events).execute().set_index("order_id").sort_index()


def test_order_facts(facts: pd.DataFrame) -> None:
    # o3 is cancelled and has no cancellation time: known as cancelled from its order time (a snapshot)
    assert facts["cancel_known_at"].isna().tolist() == [True, True, False, True]
    assert facts.loc["o3", "cancel_known_at"] == pd.Timestamp("2024-02-10")
    assert facts["first_bad_known_at"].tolist()[1:] == [
        pd.Timestamp("2024-03-04"),  # late from the promised date, before the ticket and the return
        pd.Timestamp("2024-02-10"),  # cancelled by the shop, known when ordered
        pd.Timestamp("2024-07-05"),  # still on its way after the promised date
    ]
    assert pd.isna(facts.loc["o1", "first_bad_known_at"])


def test_order_facts_without_events_have_no_bad_experiences() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    assert order_facts(inputs.orders).execute()["first_bad_known_at"].isna().all()


def test_orders_known_at_a_cutoff_qualify_and_chain_their_gaps() -> None:
    known = orders_known_at(order_facts(inputs_from_frames(clean_tables(), AS_OF).orders), pd.Timestamp("2024-07-01"))
    orders = known.execute().set_index("order_id").sort_index()
    assert orders["qualifying"].tolist() == [True, True, False, True]  # o3 cancelled
    assert pd.isna(orders.loc["o1", "gap_days"]) and orders.loc["o2", "gap_days"] == 56.0
    assert pd.isna(orders.loc["o3", "gap_days"])  # does not qualify
    assert pd.isna(orders.loc["o4", "gap_days"])  # c2's first qualifying order: the cancelled o3 has no gap chain


def test_gaps_do_not_depend_on_orders_after_them() -> None:
    frames = clean_tables()
    later = frames["orders"].iloc[[0]].assign(order_id="o5", ordered_at=pd.Timestamp("2024-02-01"))
    frames["orders"] = pd.concat([frames["orders"], later], ignore_index=True)
    facts = order_facts(inputs_from_frames(frames, AS_OF).orders)
    gaps = orders_known_at(facts, AS_OF).execute().set_index("order_id")["gap_days"]
    assert gaps["o5"] == 27.0 and gaps["o2"] == 29.0  # o1 -> o5 -> o2
    assert pd.isna(gaps["o1"])


def test_an_order_cancelled_after_the_cutoff_qualifies_at_it() -> None:
    """c1's o2 (placed 03-01) cancelled on 03-20: at 03-08 it counts and o1 -> o2 is a gap; at 03-21 it does not."""
    frames = clean_tables()
    frames["orders"] = frames["orders"].assign(
        status=["delivered", "cancelled", "cancelled", "shipped"],
        cancelled_at=[pd.NaT, pd.Timestamp("2024-03-20"), pd.Timestamp("2024-02-10 01:00"), pd.NaT],
    )
    facts = order_facts(inputs_from_frames(frames, AS_OF).orders)
    before = orders_known_at(facts, CUTOFF).execute().set_index("order_id")
    after = orders_known_at(facts, pd.Timestamp("2024-03-21")).execute().set_index("order_id")
    assert bool(before.loc["o2", "qualifying"]) and before.loc["o2", "gap_days"] == 56.0
    assert not after.loc["o2", "qualifying"] and pd.isna(after.loc["o2", "gap_days"])


def test_order_summary_at_a_cutoff() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    facts = shared_tables(inputs, PARAMS).orders
    summary = order_summary(facts, CUTOFF).execute().set_index("customer_id").sort_index()
    c1, c2 = summary.loc["c1"], summary.loc["c2"]
    assert (c1["orders_placed"], c1["orders_cancelled"], c1["orders_total"], c1["bad_orders"]) == (2, 0, 2, 1)
    assert c1["last_placed_at"] == c1["last_order_at"] == c1["last_went_wrong_at"] == pd.Timestamp("2024-03-01")
    assert (c1["value_sum"], c1["value_90d"], c1["gap_mean_days"]) == (70.0, 70.0, 56.0)
    # c2's only order before the cutoff was cancelled: counted as placed, not as qualifying.
    assert (c2["orders_placed"], c2["orders_cancelled"], c2["orders_total"], c2["bad_orders"]) == (1, 1, 0, 1)
    assert pd.isna(c2["last_order_at"]) and pd.isna(c2["value_sum"]) and c2["value_365d"] == 0.0
    assert c2["last_went_wrong_at"] == pd.Timestamp("2024-02-10")
    # o2 went wrong only from 03-04: at 03-03 neither of c1's orders had.
    early = order_summary(facts, pd.Timestamp("2024-03-03")).execute().set_index("customer_id")
    assert early.loc["c1", "bad_orders"] == 0 and pd.isna(early.loc["c1", "last_went_wrong_at"])


def test_population_is_customers_whose_last_order_is_in_the_window() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    assert sorted(population(inputs.orders, CUTOFF, 30)["customer_id"].execute()) == ["c1", "c2"]
    assert sorted(population(inputs.orders, CUTOFF, 20)["customer_id"].execute()) == ["c1"]  # c2's last: 02-10
    last = ibis.literal(pd.Timestamp("2024-02-07").to_pydatetime())
    assert is_active(last, CUTOFF, 30).execute()  # exactly 30 days before the cutoff
    assert not is_active(last, CUTOFF, 29).execute()


def test_latest_with_given_last_times_equals_latest() -> None:
    table = ibis.memtable(
        {
            "customer_id": ["a", "a", "a", "b"],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-01"]),
            "value": [9, 1, 3, 2],
        }
    )
    last_times = table.aggregate(by="customer_id", last_time=table["at"].max())
    expected = {"a": 3, "b": 2}  # a: the tie on 01-02 goes to the larger value
    for given in (None, last_times):
        result = latest(table, "at", "value", "last_value", given).execute()
        assert dict(zip(result["customer_id"], result["last_value"], strict=True)) == expected


def test_cached_shared_tables_give_the_same_features() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    for cutoff in (CUTOFF, pd.Timestamp("2024-06-25")):
        computed = features_at(inputs, cutoff, PARAMS).execute().sort_values("customer_id", ignore_index=True)
        cached = features_at(inputs, cutoff, PARAMS, shared_tables(inputs, PARAMS, cache=True)).execute()
        pd.testing.assert_frame_equal(computed, cached.sort_values("customer_id", ignore_index=True))


def test_shared_tables_and_order_summary_compile_for_spark() -> None:
    ibis.pyspark  # noqa: B018 -- registers the PySpark backend options the compiler reads
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    shared = shared_tables(inputs, PARAMS)
    assert shared.reviews is not None
    for expression in (shared.orders, shared.events, shared.reviews, order_summary(shared.orders, CUTOFF)):
        sql = ibis.to_sql(expression, dialect="pyspark")
        assert "SELECT" in sql and "`customer_id`" in sql


def test_a_cutoffs_cache_and_in_memory_tables_go_once_its_rows_are_computed() -> None:
    from features.build import release_cutoff
    from pipelines.engine import drop_in_memory_tables

    inputs = inputs_from_frames(clean_tables(), AS_OF)
    shared = shared_tables(inputs, PARAMS, cache=True)
    backend = inputs.orders._find_backend()
    kept_by_the_run = set(backend._cache_name_to_entry)
    rows = features_at(inputs, CUTOFF, PARAMS, shared)
    expected = rows.to_pyarrow().sort_by("customer_id")  # the engine does not fix the row order
    assert set(backend._cache_name_to_entry) > kept_by_the_run  # the cutoff's order summary
    memtables = [table.name for table in rows.op().find(ibis.expr.operations.InMemoryTable)]
    assert memtables  # BG/NBD's values
    release_cutoff(rows, shared)
    drop_in_memory_tables(rows)
    assert set(backend._cache_name_to_entry) == kept_by_the_run
    assert not set(memtables) & set(backend.con.sql("SHOW TABLES").fetchnumpy()["name"])
    # The shared tables still serve the next cutoff, and the same cutoff again gives the same rows.
    assert features_at(inputs, CUTOFF, PARAMS, shared).to_pyarrow().sort_by("customer_id").equals(expected)


def test_a_cutoffs_order_summary_computed_in_memory_goes_once_its_rows_are_computed() -> None:
    from features.build import IN_MEMORY_SUMMARY, release_cutoff
    from pipelines.engine import drop_in_memory_tables

    inputs = inputs_from_frames(clean_tables(), AS_OF)
    shared = shared_tables(inputs, PARAMS, cache=True, in_memory_orders=True)
    backend = inputs.orders._find_backend()

    def tables() -> set[str]:
        return set(backend.con.sql("SHOW TABLES").fetchnumpy()["name"])

    before = tables()
    rows = features_at(inputs, CUTOFF, PARAMS, shared)
    rows.to_pyarrow()
    assert [name for name in tables() - before if IN_MEMORY_SUMMARY in name]  # handed over as a temporary table
    release_cutoff(rows, shared)
    drop_in_memory_tables(rows)  # BG/NBD's values
    assert tables() == before
