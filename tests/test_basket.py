"""What was bought: the basket group worked out by hand on a tiny shop, missing (not zero) where the source lacks
lines, categories or returns, and blind to every line and return at or after the cutoff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.basket import BASKET_COLUMNS, RunningBasket, basket_part, line_facts
from features.build import feature_dictionary, features_at, shared_tables
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs, inputs_from_frames
from features.leakage import feature_differences, known_before
from pipelines.sources.synthetic import SyntheticShopParams, generate_shop

CUTOFF = pd.Timestamp("2024-06-01")
LINE_COLUMNS = ["line_id", "order_id", "product_id", "category", "quantity", "unit_price"]
AS_OF = pd.Timestamp("2024-12-01")
PARAMS = FeatureParams(horizon_days=90, active_window_days=365)
ts = pd.Timestamp


def shop() -> dict[str, pd.DataFrame]:
    """Lines before the cutoff, by unit price: 5, 10, 10, 20, 30, 30, 30, so the shop's median is 20 (l5, at 100,
    comes after the cutoff)."""
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "customer_id": ["c1", "c1", "c1", "c2", "c2", "c3"],
            "ordered_at": [ts("2024-01-10"), ts("2024-03-01"), ts("2024-07-01"), ts("2024-02-01"),
                           ts("2024-04-01"), ts("2024-05-01")],
            "order_value": [40.0, 25.0, 100.0, 30.0, 90.0, 10.0],
        }
    )  # fmt: skip
    lines = pd.DataFrame(
        [
            ("l1", "o1", "p1", "toys", 2.0, 10.0),
            ("l2", "o1", "p2", "books", 1.0, 20.0),
            ("l3", "o2", "p1", "toys", 1.0, 10.0),  # p1 again, in a later order: a repeat
            ("l4", "o2", "p3", None, 3.0, 5.0),
            ("l5", "o3", "p9", "garden", 1.0, 100.0),  # after the cutoff
            ("l6", "o4", "p2", "books", 1.0, 30.0),
            ("l7", "o5", "p4", "toys", 2.0, 30.0),
            ("l8", "o5", "p4", "toys", 1.0, 30.0),  # p4 twice in one order: not bought in an earlier order
        ],
        columns=LINE_COLUMNS,
    )
    returns = pd.DataFrame(
        [
            ("o2", ts("2024-03-05"), "l4"),  # l4, before the cutoff
            ("o4", ts("2024-02-10"), None),  # the whole of o4: l6
            ("o1", ts("2024-06-15"), "l1"),  # after the cutoff
            ("o3", ts("2024-07-05"), None),
        ],
        columns=["order_id", "returned_at", "line_id"],
    )
    return {"orders": orders, "order_lines": lines, "returns": returns}


@pytest.fixture(params=[False, True], ids=["query", "running"])
def running(request: pytest.FixtureRequest) -> bool:
    """Whether the basket comes from `RunningBasket` (the features stage) or from `basket_part` (the query)."""
    return bool(request.param)


def features(inputs: FeatureInputs, cutoff: pd.Timestamp, running: bool) -> pd.DataFrame:
    return features_at(inputs, cutoff, PARAMS, shared_tables(inputs, PARAMS, running_basket=running)).execute()


def basket(tables: dict[str, pd.DataFrame], running: bool, available: frozenset[str] | None = None) -> pd.DataFrame:
    table = features(inputs_from_frames(tables, AS_OF, available), CUTOFF, running)
    return table.set_index("customer_id")[list(BASKET_COLUMNS)]


def test_basket_features_by_hand(running: bool) -> None:
    table = basket(shop(), running)
    # c1: p1, p2, p3; toys and books (l4 has none); 7 units in 2 orders; median price 10 of the shop's 20;
    # l3 repeats p1; l4 came back.
    assert table.loc["c1"].tolist() == [3, 2, 3.5, 0.5, 0.25, 0.25]
    # c2: p2, p4; books and toys; 4 units in 2 orders; median 30; no product from an earlier order; l6 came back
    # with the whole of o4.
    assert table.loc["c2"].tolist() == pytest.approx([2, 2, 2.0, 1.5, 0.0, 1 / 3])
    # c3 ordered, but the shop recorded no line of it: no products, and no basket to measure.
    assert table.loc["c3", ["distinct_products", "distinct_categories"]].tolist() == [0, 0]
    unmeasured = ["items_per_order", "price_level", "repeat_product_share", "returned_line_share"]
    assert table.loc["c3", unmeasured].isna().all()


def test_a_line_counts_as_returned_from_the_earliest_return_naming_it_or_its_order(running: bool) -> None:
    tables = shop()
    # o1 returned whole before the cutoff: l1 and l2 came back, whatever the later return of l1 says.
    whole = pd.DataFrame({"order_id": ["o1"], "returned_at": [ts("2024-05-01")], "line_id": [None]})
    tables["returns"] = pd.concat([tables["returns"], whole], ignore_index=True)
    assert basket(tables, running).loc["c1", "returned_line_share"] == 0.75


def test_missing_not_zero_without_lines_categories_or_returns(running: bool) -> None:
    without_lines = {name: frame for name, frame in shop().items() if name != "order_lines"}
    assert basket(without_lines, running).isna().all().all()
    no_categories = shop()
    no_categories["order_lines"] = no_categories["order_lines"].assign(category=None)
    table = basket(no_categories, running)
    assert table["distinct_categories"].isna().all()
    assert table.loc["c1", "distinct_products"] == 3
    no_returns = {name: frame for name, frame in shop().items() if name != "returns"}
    table = basket(no_returns, running)
    assert table["returned_line_share"].isna().all()
    assert table.loc["c1", "repeat_product_share"] == 0.25


def test_lines_change_no_other_feature() -> None:
    """The pipeline without order lines is what it was: the other groups read nothing of them."""
    with_lines = features_at(inputs_from_frames(shop(), AS_OF), CUTOFF, PARAMS).execute()
    tables = shop()
    del tables["order_lines"]
    without = features_at(inputs_from_frames(tables, AS_OF), CUTOFF, PARAMS).execute()
    others = [c for c in with_lines.columns if c not in BASKET_COLUMNS]
    # Row order is the engine's (no ORDER BY): compare customer by customer.
    pd.testing.assert_frame_equal(
        with_lines[others].sort_values("customer_id", ignore_index=True),
        without[others].sort_values("customer_id", ignore_index=True),
    )


def test_lines_and_returns_at_or_after_the_cutoff_change_no_basket_feature(running: bool) -> None:
    full = inputs_from_frames(shop(), AS_OF)
    expected = features(full, CUTOFF, running)
    truncated = inputs_from_frames(known_before(shop(), CUTOFF), CUTOFF, full.available)
    differences = feature_differences(expected, features(truncated, CUTOFF, running))
    assert differences.sum() == 0, differences[differences > 0]
    # More of the future: a dear line of c2's, a repeat of p2 and p3 for c1, and every line returned, all after the
    # cutoff.
    later = shop()
    later["orders"] = pd.concat(
        [later["orders"], pd.DataFrame({"order_id": ["o7"], "customer_id": ["c2"], "ordered_at": [CUTOFF],
                                        "order_value": [1000.0]})],
        ignore_index=True,
    )  # fmt: skip
    later["order_lines"] = pd.concat(
        [
            later["order_lines"],
            pd.DataFrame(
                [("l9", "o7", "p2", "books", 10.0, 100.0), ("l10", "o3", "p3", "new", 5.0, 1.0)],
                columns=later["order_lines"].columns,
            ),
        ],
        ignore_index=True,
    )
    every_line = later["order_lines"].merge(later["orders"], on="order_id")
    late_returns = pd.DataFrame(
        {"order_id": every_line["order_id"], "returned_at": CUTOFF, "line_id": every_line["line_id"]}
    )
    later["returns"] = pd.concat([later["returns"], late_returns], ignore_index=True)
    changed = features(inputs_from_frames(later, AS_OF), CUTOFF, running)
    assert feature_differences(expected, changed)[list(BASKET_COLUMNS)].sum() == 0


def test_one_cutoff_basket_equals_the_line_flags_basket_at_every_edge() -> None:
    """Scoring's basket part groups the lines before its one cutoff instead of counting `line_facts`' flags: the
    same rows and values at cutoffs on, between and after the orders' times, with a product bought twice in one
    order, twice at one instant in two orders, lines without a category and returns of lines and of orders."""
    tables = shop()
    tables["orders"] = pd.concat(
        [tables["orders"], pd.DataFrame({"order_id": ["o8"], "customer_id": ["c2"], "ordered_at": [ts("2024-04-01")],
                                         "order_value": [12.0]})],
        ignore_index=True,
    )  # fmt: skip
    tables["order_lines"] = pd.concat(
        [tables["order_lines"], pd.DataFrame([("l9", "o8", "p4", None, 1.0, 7.0)], columns=LINE_COLUMNS)],
        ignore_index=True,
    )
    inputs = inputs_from_frames(tables, AS_OF)
    flags, grouped = shared_tables(inputs, PARAMS), shared_tables(inputs, PARAMS, line_flags=False)
    assert flags.lines is not None and grouped.lines is None
    times = sorted(set(tables["orders"]["ordered_at"]) | set(tables["returns"]["returned_at"]))
    for cutoff in [*times, CUTOFF, AS_OF, times[0] + pd.Timedelta(seconds=1)]:
        expected = features_at(inputs, cutoff, PARAMS, flags).execute().sort_values("customer_id")
        got = features_at(inputs, cutoff, PARAMS, grouped).execute().sort_values("customer_id")
        pd.testing.assert_frame_equal(expected.reset_index(drop=True), got.reset_index(drop=True), check_exact=True)
    # At the late cutoff c2 has p4 three times (twice in o5, once in o8 at the same instant): no repeat.
    late = features_at(inputs, AS_OF, PARAMS, grouped).execute().set_index("customer_id")
    assert late.loc["c2", "repeat_product_share"] == 0.0 and late.loc["c2", "distinct_products"] == 2


def test_lines_recorded_only_from_some_time_on_are_missing_before_it(running: bool) -> None:
    """A shop that started recording lines in February knew no basket at a January cutoff."""
    tables = shop()
    tables["order_lines"] = tables["order_lines"].query("order_id != 'o1'")
    early = features(inputs_from_frames(tables, AS_OF), ts("2024-01-20"), running)
    assert early[list(BASKET_COLUMNS)].isna().all().all()


def synthetic_shop() -> FeatureInputs:
    """A generated shop with every kind of line and return, categories missing on some lines (`generate`'s dirt is
    validation's business, not this test's)."""
    params = SyntheticShopParams(n_customers=1500, dirty_share=0.0, seed=11)
    tables = generate_shop(params).tables
    lines = tables["order_lines"].copy()
    lines.loc[lines.index % 7 == 0, "category"] = None
    return inputs_from_frames({**tables, "order_lines": lines}, pd.Timestamp(params.end_date))


def test_the_running_basket_is_the_query_at_every_cutoff_in_any_order() -> None:
    """Counts and medians to the bit, unit sums within rounding: at monthly cutoffs in time order, then at earlier
    ones again (which start the running counts over), and before the first line."""
    inputs = synthetic_shop()
    facts = line_facts(inputs)
    assert facts is not None
    running = RunningBasket(facts.to_pyarrow())
    monthly = list(pd.date_range("2023-01-01", "2026-01-01", freq="MS"))
    for cutoff in [*monthly, pd.Timestamp("2024-03-15"), pd.Timestamp("2022-06-01"), pd.Timestamp("2025-07-01")]:
        expected = _sorted(basket_part(facts, cutoff).to_pyarrow())  # type: ignore[union-attr]
        got = _sorted(running.at(cutoff))
        assert got.num_rows == expected.num_rows, cutoff
        for column in expected.column_names:
            want, have = (
                expected.column(column).to_numpy(zero_copy_only=False),
                got.column(column).to_numpy(zero_copy_only=False),
            )
            if column == "basket_units":
                np.testing.assert_allclose(have, want, rtol=1e-12, err_msg=f"{column} at {cutoff.date()}")
            else:
                assert (have == want).all(), f"{column} at {cutoff.date()}"


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by("customer_id")


def test_the_dictionary_lists_the_group() -> None:
    dictionary = feature_dictionary()
    group = dictionary[dictionary["group"] == "basket"]
    assert group["name"].tolist() == list(BASKET_COLUMNS)
    assert group["definition"].str.len().gt(40).all()


def test_inspect_maps_an_order_lines_export_by_its_header(tmp_path: Path) -> None:
    from pipelines.sources.inspect import inspect_file

    path = tmp_path / "orderrader.csv"
    path.write_text("Radnr,Ordernr,Artikelnr,Kategori,Antal,Styckpris\nR1,O1,A-7,skor,2,199.0\nR2,O1,A-9,,1,49.5\n")
    inspection = inspect_file(path)
    assert inspection.table == "order_lines"
    assert inspection.column_mapping == {
        "Radnr": "line_id", "Ordernr": "order_id", "Artikelnr": "product_id", "Kategori": "category",
        "Antal": "quantity", "Styckpris": "unit_price",
    }  # fmt: skip
