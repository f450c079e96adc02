"""The shortcuts that make validation fast at 1M customers decide exactly what the plain paths decided: Arrow-backed
text (a Parquet export) against Python-backed text, the zero-padded twins among a few candidates against all ids,
the suite run per group of columns, without GX's batch fingerprints, the raw rows released table by table, the keys
hashed once for "unique" and the duplicate rows (by Arrow's dictionary codes as by pandas' factorize), the rows kept by
Arrow's filter, the Excel ids among candidates, and the pair rules' ignored rows dropped before GX sees them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import AS_OF, as_sources, clean_tables_with_lines

from features.contract import TABLES_BY_NAME
from pipelines.sources.files import SourceTable
from pipelines.validation import run as run_module
from pipelines.validation.keys import arrow_codes, equality_classes, repeated, unique_column_classes
from pipelines.validation.parse import (
    EXCEL_FLOAT_ID,
    EXCEL_SCIENTIFIC_ID,
    SPACES,
    parse_ids,
    trim_missing,
    zero_padded_twins,
)
from pipelines.validation.run import (
    RULES_COLUMN,
    SOURCE_ROW_COLUMN,
    ValidationResult,
    cap_days_at_as_of,
    exact_duplicates,
    expectations_by_columns,
    gx_context,
    select_rows,
    validate_tables,
)
from pipelines.validation.suite import ReferenceKeys, build_suite, positions_among_many

MESSY_CELLS = [" a ", "\u00a0b\u202f", "\tc\t", "", "NA", None, "x y", " é ", "0042 ", "\u00a0", "n/a"]


def twins_of_every_id(ids: pd.Series) -> list[tuple[str, str]]:
    """The first implementation: every distinct id through the regular expressions."""
    present = pd.Series(ids.dropna().unique(), dtype="string")
    digits = present[present.str.fullmatch(r"\d+").fillna(False).astype(bool)]
    unpadded = digits.str.lstrip("0")
    twins = digits[unpadded.duplicated(keep=False)]
    return [
        (str(first), str(second))
        for _, group in twins.groupby(unpadded[twins.index])
        for first, second in [sorted(group.tolist())[:2]]
    ]


@pytest.mark.parametrize("missing", [("",), ("", "NA", "n/a")])
def test_arrow_text_is_trimmed_as_python_text(missing: tuple[str, ...]) -> None:
    python = trim_missing(pd.Series(MESSY_CELLS, dtype=object), missing)
    arrow = trim_missing(pd.Series(MESSY_CELLS, dtype="string[pyarrow]"), missing)
    assert str(arrow.dtype) == "string" and arrow.dtype.storage == "pyarrow"
    assert arrow.astype(object).tolist() == python.astype(object).tolist()
    assert python.tolist()[:3] == ["a", "b", "c"] and SPACES[1] not in "".join(python.dropna())


def test_untrimmed_arrow_text_keeps_its_buffers() -> None:
    text = pd.Series(["a", "b", None], dtype="string[pyarrow]")
    assert trim_missing(text, ("",)) is text


def test_zero_padded_twins_found_among_candidates_as_among_all_ids() -> None:
    rng = np.random.default_rng(7)
    numbers = rng.integers(0, 500, 400).astype(str)
    padded = ["0" * int(rng.integers(1, 3)) + number for number in numbers[:60]]
    odd = ["0", "00", "000", "0a1", "a01", "\u0663", "0\u0663", "\u0663\u0663", "\u066042", "042x", "42", None]
    for dtype in ("object", "string[pyarrow]"):
        ids = pd.Series([*numbers, *padded, *odd], dtype=dtype)
        expected = twins_of_every_id(ids)
        assert zero_padded_twins(ids) == expected
        assert ("0", "00") in expected and ("0\u0663", "\u0663") in expected and len(expected) > 20
    assert zero_padded_twins(pd.Series(["1", "2", None], dtype="string[pyarrow]")) == []


def test_suite_groups_hold_every_expectation_once_on_its_columns() -> None:
    gx_context()  # suites are built inside a context, as validation builds them
    table = TABLES_BY_NAME["returns"]
    suite = build_suite(table, AS_OF, {"order_id", "line_id"}, set())
    parts = expectations_by_columns(suite)
    grouped = [(columns, e) for columns, part in parts.items() for e in part.expectations]
    assert sorted(e.meta["rule"] for _, e in grouped) == sorted(e.meta["rule"] for e in suite.expectations)
    for columns, expectation in grouped:
        named = [getattr(expectation, f, None) for f in ("column", "column_A", "column_B")]
        assert set(columns) == {name for name in named if isinstance(name, str)}


def dirty_shop() -> dict[str, pd.DataFrame]:
    """Every table as text with cells that break rules, need trimming, or are missing-value words."""
    tables = clean_tables_with_lines()
    text = {name: frame.astype(object).map(lambda v: None if pd.isna(v) else str(v)) for name, frame in tables.items()}
    orders = text["orders"]
    orders.loc[0, "order_value"] = " 50.0\u00a0"
    orders.loc[1, "status"] = "\tteleported "
    orders.loc[2, "customer_id"] = " c9 "
    orders.loc[3, "ordered_at"] = "2031-01-01 00:00:00"
    text["orders"] = pd.concat([orders, orders.iloc[[0]]], ignore_index=True)  # an exact duplicate
    lines = text["order_lines"]
    lines.loc[0, "quantity"] = "-1"
    lines.loc[1, "order_id"] = "o99"
    lines.loc[2, "line_id"] = "l4"  # a key used twice
    lines.loc[3, "category"] = "  "
    text["order_lines"] = lines
    text["reviews"].loc[0, "review_score"] = " 6 "
    text["customers"].loc[1, "customer_id"] = "0c1"
    return text


def outcome(result: ValidationResult) -> dict[str, Any]:
    as_objects = {
        kind: {name: frame.astype(object).where(frame.notna(), None).to_dict("list") for name, frame in tables.items()}
        for kind, tables in (("accepted", result.accepted), ("quarantined", result.quarantined))
    }
    return {**as_objects, "reports": [report.to_dict() for report in result.reports]}


def test_arrow_backed_text_validates_as_python_backed_text() -> None:
    shop = dirty_shop()
    python = validate_tables(as_sources(shop), AS_OF)
    arrow = validate_tables(as_sources({n: f.astype("string[pyarrow]") for n, f in shop.items()}), AS_OF)
    assert outcome(arrow) == outcome(python)
    rules = python.reports[1].rule_counts  # orders
    assert {"orders.status.allowed", "orders.customer_id.references", "orders.duplicate_row"} <= set(rules)
    assert python.reports[2].rule_counts.get("order_lines.line_id.unique") == 2
    assert python.reports[3].rule_counts == {"reviews.review_score.range": 1}


def test_validation_never_fingerprints_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from great_expectations.execution_engine import pandas_execution_engine

    def refuse(frame: pd.DataFrame) -> str:
        raise AssertionError("a batch was fingerprinted")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    result = validate_tables(as_sources(dirty_shop()), AS_OF)
    assert result.reports[1].quarantined > 0
    assert pandas_execution_engine.HASH_THRESHOLD == 1e9  # restored after the suite


def test_released_sources_give_the_same_outcome() -> None:
    kept = as_sources(dirty_shop())
    released: dict[str, SourceTable] = as_sources(dirty_shop())
    assert outcome(validate_tables(released, AS_OF, release=True)) == outcome(validate_tables(kept, AS_OF))
    assert released == {} and set(kept) == set(dirty_shop())


# Keys that look alike but are not equal, repeated keys, missing ones (None and pd.NA), text that is not ASCII.
TRICKY_KEYS = ["1", "01", "1 ", "1", None, "", "é", "e\u0301", "01", pd.NA, "001", "1", "", "é", "X0", "x0"]


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
def test_equality_classes_are_equal_exactly_where_the_values_are(dtype: str) -> None:
    values = pd.Series(TRICKY_KEYS, dtype=dtype, index=range(100, 100 + len(TRICKY_KEYS)))
    classes = equality_classes(values)
    assert classes.index.equals(values.index) and str(classes.dtype) == "Int64"
    assert (classes.isna() == values.isna()).all()
    present = values.notna().to_numpy()
    plain = values.astype(object).tolist()
    for i in np.flatnonzero(present):
        for j in np.flatnonzero(present):
            assert (classes.iloc[i] == classes.iloc[j]) == (plain[i] == plain[j]), (plain[i], plain[j])
    # Great Expectations' "unique" compares the present values only
    assert classes[present].duplicated(keep=False).tolist() == values[present].duplicated(keep=False).tolist()


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
def test_repeated_rows_are_the_rows_pandas_finds_duplicated(dtype: str) -> None:
    values = pd.Series(TRICKY_KEYS, dtype=dtype)
    # Every kind of missing value (None, pd.NA) is one missing value, repeated here.
    expected = values.astype(object).where(values.notna(), None).duplicated(keep=False).to_numpy()
    assert repeated(equality_classes(values)).tolist() == expected.tolist()
    once = pd.Series(["1", "01", None, "001"], dtype=dtype)
    assert not repeated(equality_classes(once)).any()
    assert repeated(equality_classes(pd.Series([], dtype=dtype))).tolist() == []
    assert equality_classes(pd.Series([None, None], dtype=dtype)).isna().all()


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
def test_exact_duplicates_are_the_rows_pandas_marks(dtype: str) -> None:
    table = TABLES_BY_NAME["order_lines"]
    line_ids = ["l1", "l1", "01", "1", "1", None, None, "l1", "1", "01", "l2", None]
    frame = pd.DataFrame(
        {
            "line_id": pd.Series(line_ids, dtype=dtype),
            "order_id": pd.Series(
                ["o1", "o1", "o1", "o1", "o1", "o2", "o2", "o1", "o2", "o1", "o3", "o2"], dtype=dtype
            ),
            "quantity": pd.array([1, 1, 2, 2, 2, 3, 3, 1, 2, None, 1, 3], dtype="Int64"),
        }
    )
    expected = frame.duplicated(keep="first").to_numpy()
    found = exact_duplicates(frame, table, unique_column_classes(frame, table))
    assert found.tolist() == expected.tolist()
    assert expected.tolist() == [False, True, False, False, True, False, True, True] + [False] * 3 + [True]
    empty = frame.iloc[:0]
    assert exact_duplicates(empty, table, unique_column_classes(empty, table)).tolist() == []


def test_unique_rule_runs_on_equality_classes_with_the_same_outcome() -> None:
    """Two shops whose keys differ only in text ("01"/"1" swapped for "a"/"b" ...) break "unique" on the same rows."""
    shop = dirty_shop()
    lines = shop["order_lines"]
    lines.loc[4, "line_id"] = "01"
    lines.loc[5, "line_id"] = "1"
    arrow = validate_tables(as_sources({n: f.astype("string[pyarrow]") for n, f in shop.items()}), AS_OF)
    python = validate_tables(as_sources(shop), AS_OF)
    assert outcome(arrow) == outcome(python)
    assert python.reports[2].rule_counts.get("order_lines.line_id.unique") == 2  # "l4" twice; "01" and "1" differ
    quarantined = python.quarantined["order_lines"]
    assert set(quarantined.loc[quarantined["_rules"].str.contains("unique"), "line_id"]) == {"l4"}


def mixed_frame(rows: int) -> pd.DataFrame:
    """A frame with every kind of column validation selects rows of: Arrow-backed and Python text, nullable and numpy
    numbers, times, flags; missing cells in each; an index that is not 0..n-1."""
    rng = np.random.default_rng(3)
    text = [None if i % 7 == 0 else f"v{i % 5}" for i in range(rows)]
    return pd.DataFrame(
        {
            "arrow_text": pd.Series(text, dtype="string[pyarrow]"),
            "large_text": pd.Series(text, dtype=pd.ArrowDtype(pa.large_string())),
            "python_text": pd.Series(text, dtype=object),
            "count": pd.array([None if i % 4 == 0 else i for i in range(rows)], dtype="Int64"),
            "amount": np.where(np.arange(rows) % 6 == 0, np.nan, rng.random(rows)),
            "at": pd.to_datetime(["2024-01-02" if i % 3 else None for i in range(rows)]),
            "flag": pd.array([None if i % 5 == 0 else i % 2 == 0 for i in range(rows)], dtype="boolean"),
            "kind": pd.Categorical([["a", "b"][i % 2] for i in range(rows)]),
        }
    ).set_axis(np.arange(rows) * 3 + 100)


@pytest.mark.parametrize("rows", [0, 1, 40])
@pytest.mark.parametrize("kept", ["some", "all", "none"])
def test_selected_rows_are_the_frames_boolean_indexing(rows: int, kept: str) -> None:
    frame = mixed_frame(rows)
    keep = {"some": np.arange(rows) % 3 != 1, "all": np.ones(rows, bool), "none": np.zeros(rows, bool)}[kept]
    selected = select_rows(frame, keep)
    pd.testing.assert_frame_equal(selected, frame[keep], check_exact=True)
    assert list(selected.dtypes) == list(frame.dtypes)
    twice = frame.set_axis(["a", "b", "a", "c", "d", "e", "f", "g"], axis=1)  # names repeated: the frame's own way
    pd.testing.assert_frame_equal(select_rows(twice, keep), twice[keep], check_exact=True)
    for named in (frame, twice):
        renumbered = select_rows(named, keep, renumbered=True)
        pd.testing.assert_frame_equal(renumbered, named[keep].reset_index(drop=True), check_exact=True)
        assert isinstance(renumbered.index, pd.RangeIndex)


def test_days_capped_at_as_of_leave_the_other_columns_as_they_are() -> None:
    table = TABLES_BY_NAME["orders"]
    as_of = pd.Timestamp("2024-07-01")
    day_end = pd.Timestamp("2024-07-01 23:59:59.999999")
    accepted = pd.DataFrame(
        {
            "order_id": pd.Series(["o1", "o2", "o3"], dtype="string[pyarrow]"),
            "ordered_at": [day_end, as_of, pd.NaT],
            "delivered_at": [day_end, pd.Timestamp("2024-06-30 23:59:59.999999"), pd.NaT],
            "order_value": [1.0, 2.0, np.nan],
        }
    )
    capped = cap_days_at_as_of(accepted, table, ["ordered_at", "delivered_at"], as_of)
    expected = accepted.assign(
        ordered_at=[as_of, as_of, pd.NaT], delivered_at=[as_of, accepted.loc[1, "delivered_at"], pd.NaT]
    )
    pd.testing.assert_frame_equal(capped, expected, check_exact=True)
    assert np.shares_memory(capped["order_value"].to_numpy(), accepted["order_value"].to_numpy())
    assert cap_days_at_as_of(accepted, table, [], as_of) is accepted


EXCEL_LOOKALIKES = ["42.0", "4.2E+05", "4.2e+05", "42.", ".0", "0.0", "01.0", "1.5", "4E+5", "4.2E+", "E+", "42.0.0"]
OTHER_IDS = ["42", "0042", "\u0664\u0662.0", "\u0664.2E+05", "a.b", "", None, "x", "E", "c1", "4.2E-05", "42.0 "]


def ids_parsed_by_matching_every_id(text: pd.Series) -> tuple[list[Any], int, list[bool]]:
    """The plain path: both regular expressions on every id, float-looking ids split where they match."""
    values = text.astype("string[pyarrow]")
    floats = values.str.fullmatch(EXCEL_FLOAT_ID).fillna(False).astype(bool)
    scientific = values.str.fullmatch(EXCEL_SCIENTIFIC_ID).fillna(False).astype(bool).to_numpy()
    undone = values.where(~floats, values.str.split(".", n=1).str[0]).mask(scientific).astype("string[pyarrow]")
    return undone.astype(object).where(undone.notna(), None).tolist(), int(floats.sum()), scientific.tolist()


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
@pytest.mark.parametrize("cells", [EXCEL_LOOKALIKES + OTHER_IDS, OTHER_IDS, ["c1", "c2"], []])
def test_excel_ids_found_among_candidates_as_among_all_ids(dtype: str, cells: list[str | None]) -> None:
    text = pd.Series(cells, dtype=dtype, index=range(7, 7 + len(cells)))
    parsed = parse_ids(text, excel_ids=True)
    values = parsed.values.astype(object).where(parsed.values.notna(), None).tolist()
    assert (values, parsed.excel_floats_undone, parsed.excel_scientific.tolist()) == ids_parsed_by_matching_every_id(
        text
    )
    assert str(parsed.values.dtype) == "string" and parsed.values.index.equals(text.index)
    if cells and cells[0] == "42.0":
        assert values[:3] == ["42", None, "4.2e+05"] and parsed.excel_floats_undone == 2  # "42.0", "0.0"


def positions_by_hashing_the_keys(values: pd.Series, keys: pa.Array) -> list[int]:
    """The plain path: Arrow's `index_in` with a hash table of every key."""
    return np.asarray(pc.index_in(pa.array(values), value_set=keys).fill_null(-1), dtype=np.int64).tolist()


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
@pytest.mark.parametrize(
    "cells",
    [
        ["1", "01", None, "1", "x", "", "001", pd.NA, "é", "01"],  # repeats, look-alikes, missing, unknown
        [None, None],
        ["zz", "yy"],
        [],
    ],
)
def test_positions_among_many_keys_are_arrows_index_in(dtype: str, cells: list[Any]) -> None:
    keys = pa.chunked_array(
        [pa.array(["k0", "01", "1", "", "é", "k5"], pa.large_string()), pa.array(["e\u0301", "0"], pa.large_string())]
    )
    values = pd.Series(cells, dtype=dtype)
    # Python text of nothing but missing values is Arrow's null type, which index_in refuses; none is found.
    plain = [-1] * len(cells) if values.isna().all() else positions_by_hashing_the_keys(values, keys)
    assert positions_among_many(pa.array(values), keys).tolist() == plain
    if cells and cells[0] == "1":
        assert positions_among_many(pa.array(values), keys).tolist() == [2, 1, -1, 2, -1, 3, -1, -1, 4, 1]


def test_reference_positions_are_the_same_for_few_and_many_values() -> None:
    """`ReferenceKeys.positions` takes the path among many keys for few values, Arrow's `index_in` for many."""
    lines = pd.DataFrame({"line_id": pd.Series([f"l{i}" for i in range(50)] + ["01", "1"], dtype="string[pyarrow]")})
    references = ReferenceKeys({"order_lines": lines})
    keys = references.keys("order_lines.line_id")
    assert keys is not None
    rng = np.random.default_rng(5)
    for size in (3, 20, 26, 27, 60, 200):  # 26 or fewer: among many keys
        cells = [None if i % 9 == 0 else f"l{rng.integers(0, 70)}" for i in range(size)] + ["1", "001"]
        for dtype in ("object", "string[pyarrow]"):
            values = pd.Series(cells, dtype=dtype)
            assert references.positions("order_lines.line_id", values).tolist() == positions_by_hashing_the_keys(
                values, keys
            )


@pytest.mark.parametrize(
    "chunks",
    [
        [["b", "a", None], [], ["a", "c", "b", None], ["é", "e\u0301", "c"]],  # repeats across chunks, empty chunk
        [[None, None]],
        [],
    ],
)
def test_arrow_codes_are_pandas_factorize_codes(chunks: list[list[str | None]]) -> None:
    column = pa.chunked_array([pa.array(chunk, pa.large_string()) for chunk in chunks], pa.large_string())
    values = pd.Series(pd.arrays.ArrowStringArray(column))
    codes = arrow_codes(values)
    expected, _ = pd.factorize(values, use_na_sentinel=True)
    assert codes is not None and codes.tolist() == expected.tolist()


def test_pair_rules_break_the_same_rows_with_their_missing_rows_dropped_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """`batch_rows` drops the rows a pair rule ignores before GX sees them; GX dropping them itself decides the same."""
    tables = clean_tables_with_lines()
    orders = tables["orders"]  # o3 has neither a promised nor a delivery time: ignored by both pair rules
    orders.loc[1, "delivered_at"] = orders.loc[1, "ordered_at"] - pd.Timedelta(days=2)  # delivered before ordered
    orders.loc[3, "promised_delivery_at"] = orders.loc[3, "ordered_at"] - pd.Timedelta(hours=1)
    tables["reviews"].loc[0, "reviewed_at"] = orders.loc[0, "ordered_at"] - pd.Timedelta(days=1)  # before o1
    dropped_first = validate_tables(as_sources(tables), AS_OF)

    def all_rows(frame: pd.DataFrame, columns: tuple[str, ...], expectations: Any) -> pd.DataFrame:
        return frame[list(columns)]

    monkeypatch.setattr(run_module, "batch_rows", all_rows)
    plain = validate_tables(as_sources(tables), AS_OF)
    assert outcome(dropped_first) == outcome(plain)
    orders_rules = dropped_first.reports[1].rule_counts
    assert orders_rules == {"orders.delivered_at.not_before": 1, "orders.promised_delivery_at.not_before": 1}
    assert dropped_first.reports[3].rule_counts == {"reviews.reviewed_at.not_before": 1}


def test_references_looked_up_for_every_row_break_only_on_the_checked_rows() -> None:
    """The references are looked up for every row (on a thread, beside the table's own keys) and taken at the rows
    the suite checks: a duplicate row or a row with an unreadable cell that also points nowhere is quarantined for
    its duplicate or its cell alone, as when only the checked rows were looked up."""
    tables = clean_tables_with_lines()
    unknown = {"ticket_id": "t2", "customer_id": "c9", "order_id": "o9", "opened_at": "2024-03-06 10:00"}
    unreadable = {"ticket_id": "t3", "customer_id": "c1", "order_id": "o8", "opened_at": "not a date"}
    tickets = pd.DataFrame([*tables["tickets"].astype(str).to_dict("records"), unknown, unreadable, unknown])
    tables["tickets"] = tickets.astype({"resolved_at": object}).assign(resolved_at=None, reason=None)
    result = validate_tables(as_sources(tables), AS_OF)
    quarantined = result.quarantined["tickets"]
    assert dict(zip(quarantined[SOURCE_ROW_COLUMN], quarantined[RULES_COLUMN], strict=True)) == {
        1: "tickets.customer_id.references; tickets.order_id.references",
        2: "tickets.opened_at.date_format",
        3: "tickets.duplicate_row",
    }
    assert result.accepted["tickets"]["ticket_id"].tolist() == ["t1"]


@pytest.mark.parametrize("absent", [None, "customers"])
def test_accepted_rows_handed_over_table_by_table_decide_as_kept_ones(absent: str | None) -> None:
    """Without `keep_accepted`, each table's accepted rows go to `on_validated` and only the columns later tables
    read stay (keys, the order's time, the line's order; orders' customers when there is no customers table): the
    same rows are accepted and quarantined, for the same rules, as when every table is kept whole."""
    shop = clean_tables_with_lines()
    shop["orders"] = pd.concat([shop["orders"], shop["orders"].iloc[[1]]], ignore_index=True)  # a duplicate row
    shop["reviews"].loc[0, "reviewed_at"] = pd.Timestamp("2024-01-04")  # before its order o1
    shop["returns"].loc[0, "order_id"] = "o1"  # its line l3 is o2's
    shop["tickets"].loc[0, "customer_id"] = "c7"  # no such customer
    if absent:
        del shop[absent]
    kept = validate_tables(as_sources(shop), AS_OF)
    handed: dict[str, pd.DataFrame] = {}

    def hand_over(name: str, accepted: pd.DataFrame, quarantined: pd.DataFrame) -> None:
        handed[name] = accepted

    released = validate_tables(as_sources(shop), AS_OF, release=True, on_validated=hand_over, keep_accepted=False)
    assert released.accepted == {}
    assert outcome(dataclasses.replace(released, accepted=handed)) == outcome(kept)
    broken = {rule for report in kept.reports for rule in report.rule_counts}
    assert broken == {
        "orders.duplicate_row",
        "reviews.reviewed_at.not_before",
        "returns.order_id.agrees",
        "tickets.customer_id.references",
    }
    with pytest.raises(ValueError, match="keep_accepted=False needs on_validated"):
        validate_tables(as_sources(shop), AS_OF, keep_accepted=False)


def test_columns_added_without_copies_equal_assign() -> None:
    """`with_columns` gives `assign`'s frame (new columns after the old, a replaced one in its place, Series aligned
    by label, arrays by position) and shares the NumPy columns it keeps instead of copying them."""
    from pipelines.validation.suite import with_columns

    frame = pd.DataFrame(
        {
            "id": pd.array(["a", "b", None, "d"], dtype="string[pyarrow]"),
            "value": [1.5, np.nan, 3.0, 4.0],
            "at": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
        },
        index=[7, 3, 11, 0],
    )
    added = {
        "__known": np.array([True, False, True, True]),
        "__day": pd.Series(pd.to_datetime(["2024-02-01", "2024-02-02", None, "2024-02-04"]), index=[0, 11, 3, 7]),
        "value": pd.Series([9.0, 8.0, 7.0, 6.0], index=frame.index),
    }
    pd.testing.assert_frame_equal(with_columns(frame, added), frame.assign(**added))
    assert np.shares_memory(with_columns(frame, added)["at"].to_numpy(), frame["at"].to_numpy())
    repeated = pd.DataFrame([[1, 2]], columns=["x", "x"])
    pd.testing.assert_frame_equal(with_columns(repeated, {"y": [3]}), repeated.assign(y=[3]))
