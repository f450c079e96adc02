"""The Great Expectations suite for each contract table, derived from `features.contract` (never written twice).

Every expectation carries its rule id in `meta["rule"]` (`<table>.<column>.<check>`), which is how a failing row is
attributed to the rule it broke. Cross-table rules (references, "not before the order") run on lookup columns that
`add_lookup_columns` computes from the already accepted referenced table, so the suite stays row-wise and the
referenced keys never have to be copied into an expectation; "unique" runs on a lookup column of integers that are
equal exactly where the key's values are (`equality_column`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import PANDAS_DTYPES, TABLES, TABLES_BY_NAME, Column, Table

if TYPE_CHECKING:
    import great_expectations as gx

LOOKUP_PREFIX = "__"
# A day known only by its date is stored as the last moment of that day.
# Microseconds: the finest time DuckDB and Spark hold, so the feature engines read it unchanged.
END_OF_DAY = pd.Timedelta(days=1) - pd.Timedelta(1, unit="us")


def known_column(column: str) -> str:
    """Lookup column: True where `column` is empty or points to an accepted row of the referenced table."""
    return f"{LOOKUP_PREFIX}{column}_known"


def equality_column(column: str) -> str:
    """Lookup column: an integer per row, equal exactly where `column` holds equal values (missing where it is
    missing; `keys.equality_classes`). "unique" runs on it, so Great Expectations hashes integers, not the text."""
    return f"{LOOKUP_PREFIX}{column}_equality"


def referenced_column(reference: str) -> str:
    """Lookup column holding `table.column` of the referenced row, e.g. the order's ordered_at for a review."""
    return f"{LOOKUP_PREFIX}{reference}"


def day_column(column: str) -> str:
    """Lookup column holding the day of a timestamp, for time-order rules where one side is known only by day."""
    return f"{LOOKUP_PREFIX}day_{column}"


def compared_by_day(table: Table, column: Column, date_only: set[str]) -> bool:
    """A time-order rule compares days when either side holds dates without a time of day."""
    if not column.not_before:
        return False
    earlier = column.not_before if "." in column.not_before else f"{table.name}.{column.not_before}"
    return f"{table.name}.{column.name}" in date_only or earlier in date_only


def rule_id(table: Table, column: Column, check: str) -> str:
    return f"{table.name}.{column.name}.{check}"


def duplicate_row_rule(table: Table) -> str:
    return f"{table.name}.duplicate_row"


def build_suite(
    table: Table, as_of: pd.Timestamp, checked_references: set[str], date_only: set[str]
) -> gx.ExpectationSuite:
    """All row-level expectations of `table`; references only for columns in `checked_references`. Columns in
    `date_only` ("table.column") hold days: they are checked against as-of's day and compared by day."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"contract.{table.name}")
    for column in table.columns:
        check_reference = column.name in checked_references
        for expectation in _column_expectations(table, column, as_of, check_reference, date_only):
            suite.add_expectation(expectation)
    return suite


def _column_expectations(
    table: Table, column: Column, as_of: pd.Timestamp, check_reference: bool, date_only: set[str]
) -> list[Any]:
    import great_expectations.expectations as gxe

    name = column.name
    expectations: list[Any] = []
    if not column.nullable:
        expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(column=name, meta={"rule": rule_id(table, column, "not_null")})
        )
    if column.unique:
        expectations.append(
            gxe.ExpectColumnValuesToBeUnique(
                column=equality_column(name), meta={"rule": rule_id(table, column, "unique")}
            )
        )
    if column.allowed:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=list(column.allowed), meta={"rule": rule_id(table, column, "allowed")}
            )
        )
    if column.min_value is not None or column.max_value is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=column.min_value,
                max_value=column.max_value,
                strict_min=column.strict_min,
                meta={"rule": rule_id(table, column, "range")},
            )
        )
    if column.dtype == "timestamp" and not column.may_be_future:
        # A day (stored as its end) is not after as-of when it is as-of's day or earlier.
        latest = as_of.normalize() + END_OF_DAY if f"{table.name}.{name}" in date_only else as_of
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name, max_value=latest, meta={"rule": rule_id(table, column, "not_after_as_of")}
            )
        )
    if column.not_before:
        earlier = column.not_before if "." not in column.not_before else referenced_column(column.not_before)
        by_day = compared_by_day(table, column, date_only)
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=day_column(name) if by_day else name,
                column_B=day_column(earlier) if by_day else earlier,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"rule": rule_id(table, column, "not_before")},
            )
        )
    if column.agrees_with:
        expectations.append(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A=name,
                column_B=referenced_column(column.agrees_with),
                ignore_row_if="either_value_is_missing",
                meta={"rule": rule_id(table, column, "agrees")},
            )
        )
    if column.references and check_reference:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=known_column(name),
                value_set=[True],
                meta={"rule": rule_id(table, column, "references")},
            )
        )
    return expectations


class ReferenceKeys:
    """The accepted keys other tables may point to, as Arrow arrays built once per referenced column."""

    def __init__(self, accepted: dict[str, pd.DataFrame]) -> None:
        self._accepted = accepted
        self._keys: dict[str, pa.Array] = {}

    def keys(self, reference: str) -> pa.Array | None:
        """Keys of `table.column`; a reference to `customers.customer_id` falls back to the customers seen in
        accepted orders when the shop has no customers table; None when the referenced table is absent."""
        if reference not in self._keys:
            table_name, column_name = reference.split(".")
            if table_name in self._accepted:
                values = self._accepted[table_name][column_name]
                column = TABLES_BY_NAME[table_name].column(column_name)
                if column.unique and not column.nullable:
                    # Accepted rows passed "unique" and "not_null": the column is its own unique keys, in row order
                    # (pc.unique over 15M line ids cost seconds for nothing).
                    self._keys[reference] = pa.array(values)
                    return self._keys[reference]
            elif reference == "customers.customer_id" and "orders" in self._accepted:
                values = self._accepted["orders"]["customer_id"]
            else:
                return None  # not accepted yet (or absent): nothing to cache
            self._keys[reference] = pc.unique(pa.array(values.dropna()))
        return self._keys[reference]

    def positions(self, reference: str, values: pd.Series) -> np.ndarray | None:
        """Row position of each value among the referenced table's rows (-1: unknown), or None if unchecked."""
        keys = self.keys(reference)
        if keys is None:
            return None
        looked_up = pa.array(values)
        if 2 * len(looked_up) <= len(keys):
            return positions_among_many(looked_up, keys)
        found = pc.index_in(looked_up, value_set=keys)
        return np.asarray(found.fill_null(-1), dtype=np.int64)


def positions_among_many(values: pa.Array | pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """`pc.index_in(values, value_set=keys)` with -1 for not found, for values far fewer than the (unique) keys:
    the hash table is built of the distinct values and the keys are looked up in it, then matched back (a return's
    line among 15M order lines: a third of the CPU of hashing every line id). One dictionary encoding gives both
    the distinct values and each value's place among them (hashing the values once, not twice: reviews' 2.6M order
    ids among 8.4M orders, 1.6 CPU-seconds instead of 2.9)."""
    if values.null_count == len(values):  # nothing to look up (Python text of only missing values: Arrow's null type)
        return np.full(len(values), -1, dtype=np.int64)
    encoded = pc.dictionary_encode(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
    distinct = encoded.dictionary  # nulls are not in it: they are null indices
    distinct_of_key = np.asarray(pc.index_in(keys, value_set=distinct).fill_null(-1), dtype=np.int64)
    matched_keys = np.flatnonzero(distinct_of_key >= 0)
    key_of_distinct = np.full(len(distinct), -1, dtype=np.int64)
    key_of_distinct[distinct_of_key[matched_keys]] = matched_keys  # keys are unique: one key per distinct value
    which = np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)
    return np.where(which >= 0, key_of_distinct[which], -1)


def reference_positions(typed: pd.DataFrame, table: Table, references: ReferenceKeys) -> dict[str, np.ndarray]:
    """Column name -> each row's position among the accepted keys its column references (-1: unknown), for every
    reference column of `table` whose referenced keys are there to check against."""
    found = {}
    for column in table.columns:
        if column.references:
            positions = references.positions(column.references, typed[column.name])
            if positions is not None:
                found[column.name] = positions
    return found


def add_lookup_columns(
    typed: pd.DataFrame,
    table: Table,
    accepted: dict[str, pd.DataFrame],
    positions_by_column: dict[str, np.ndarray],
    equalities: dict[str, pd.Series],
) -> tuple[pd.DataFrame, set[str]]:
    """Add the lookup columns the rules need (`positions_by_column`: `reference_positions` of these rows;
    `equalities`: the unique columns' equality classes of these rows, from `keys.unique_column_classes`); returns the
    frame and the columns whose reference is checked."""
    lookups: dict[str, Any] = dict(equalities)
    checked = set()
    for column in table.columns:
        if column.references is None or column.name not in positions_by_column:
            continue
        positions = positions_by_column[column.name]
        lookups[known_column(column.name)] = (positions >= 0) | typed[column.name].isna().to_numpy()
        checked.add(column.name)
        referenced_table = column.references.split(".")[0]
        for reached in _reached_columns(table):
            if reached.startswith(referenced_table + "."):
                # Keys are unique in accepted tables, so a key's position among the unique keys is its row.
                lookups[referenced_column(reached)] = _look_up(
                    accepted[referenced_table][reached.split(".")[1]], positions, typed.index
                )
    for reached in _reached_columns(table):
        if referenced_column(reached) not in lookups:
            # Referenced table absent: nothing to compare with.
            lookups[referenced_column(reached)] = _nothing_like(reached, typed.index)
    return with_columns(typed, lookups), checked


def columns_read_by_other_tables(table: Table) -> list[str]:
    """The columns of `table` that other tables' rules read from its accepted rows: the keys they reference, the
    columns they compare with, and orders' customer ids (the customers' keys when the shop has no customers
    table; `ReferenceKeys.keys`)."""
    read = {"customer_id"} if table.name == "orders" else set()
    for other in TABLES:
        for column in other.columns:
            for target in (column.references, column.not_before, column.agrees_with):
                if target is not None and target.startswith(f"{table.name}."):
                    read.add(target.split(".")[1])
    return [column.name for column in table.columns if column.name in read]


def _reached_columns(table: Table) -> list[str]:
    """The "table.column" of other tables that the rules of `table` compare with, through a reference."""
    reached = [column.not_before for column in table.columns if column.not_before and "." in column.not_before]
    return reached + [column.agrees_with for column in table.columns if column.agrees_with]


def _nothing_like(reached: str, index: pd.Index) -> pd.Series:
    """An all-missing lookup column of the type of `reached` ("table.column")."""
    table_name, column_name = reached.split(".")
    dtype = PANDAS_DTYPES[TABLES_BY_NAME[table_name].column(column_name).dtype]
    return pd.Series(pd.NA if dtype != "datetime64[ns]" else pd.NaT, index=index, dtype=dtype)


def add_day_columns(frame: pd.DataFrame, table: Table, date_only: set[str]) -> pd.DataFrame:
    """The days of both sides of every time-order rule compared by day (after `add_lookup_columns`)."""
    days = {}
    for column in table.columns:
        if compared_by_day(table, column, date_only):
            assert column.not_before is not None
            earlier = column.not_before if "." not in column.not_before else referenced_column(column.not_before)
            days[day_column(column.name)] = frame[column.name].dt.floor("D")
            days[day_column(earlier)] = frame[earlier].dt.floor("D")
    return with_columns(frame, days)


def with_columns(frame: pd.DataFrame, added: dict[str, Any]) -> pd.DataFrame:
    """`frame.assign(**added)` without `assign`'s copy of every NumPy-backed column `frame` already has (the checked
    order lines' numbers, twice per table: it is only read from here on)."""
    if not frame.columns.is_unique:
        return frame.assign(**added)
    columns = {name: added[name] if name in added else frame[name] for name in frame.columns}
    columns |= {name: values for name, values in added.items() if name not in columns}
    return pd.DataFrame(columns, index=frame.index, columns=list(columns), copy=False)


def _look_up(values: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """values[positions] where a position was found (>= 0), else missing."""
    found = positions >= 0
    result = pd.Series(pd.NaT if values.dtype.kind == "M" else pd.NA, index=index, dtype=values.dtype)
    result[found] = values.to_numpy()[positions[found]]
    return result
