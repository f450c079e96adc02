"""The Great Expectations suite for each contract table, derived from `features.contract` (never written twice).

Every expectation carries its rule id in `meta["rule"]` (`<table>.<column>.<check>`), which is how a failing row is
attributed to the rule it broke. Cross-table rules (references, "not before the order") run on lookup columns that
`add_lookup_columns` computes from the already accepted referenced table, so the suite stays row-wise and the
referenced keys never have to be copied into an expectation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import Column, Table

if TYPE_CHECKING:
    import great_expectations as gx

LOOKUP_PREFIX = "__"


def known_column(column: str) -> str:
    """Lookup column: True where `column` is empty or points to an accepted row of the referenced table."""
    return f"{LOOKUP_PREFIX}{column}_known"


def referenced_column(reference: str) -> str:
    """Lookup column holding `table.column` of the referenced row, e.g. the order's ordered_at for a review."""
    return f"{LOOKUP_PREFIX}{reference}"


def rule_id(table: Table, column: Column, check: str) -> str:
    return f"{table.name}.{column.name}.{check}"


def duplicate_row_rule(table: Table) -> str:
    return f"{table.name}.duplicate_row"


def build_suite(table: Table, as_of: pd.Timestamp, checked_references: set[str]) -> gx.ExpectationSuite:
    """All row-level expectations of `table`; references only for columns in `checked_references`."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"contract.{table.name}")
    for column in table.columns:
        for expectation in _column_expectations(table, column, as_of, column.name in checked_references):
            suite.add_expectation(expectation)
    return suite


def _column_expectations(table: Table, column: Column, as_of: pd.Timestamp, check_reference: bool) -> list[Any]:
    import great_expectations.expectations as gxe

    name = column.name
    expectations: list[Any] = []
    if not column.nullable:
        expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(column=name, meta={"rule": rule_id(table, column, "not_null")})
        )
    if column.unique:
        expectations.append(
            gxe.ExpectColumnValuesToBeUnique(column=name, meta={"rule": rule_id(table, column, "unique")})
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
                meta={"rule": rule_id(table, column, "range")},
            )
        )
    if column.dtype == "timestamp" and not column.may_be_future:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name, max_value=as_of, meta={"rule": rule_id(table, column, "not_after_as_of")}
            )
        )
    if column.not_before:
        earlier = column.not_before if "." not in column.not_before else referenced_column(column.not_before)
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=name,
                column_B=earlier,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"rule": rule_id(table, column, "not_before")},
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


def add_lookup_columns(
    typed: pd.DataFrame, table: Table, accepted: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, set[str]]:
    """Add the lookup columns cross-table rules need; returns the frame and the columns whose reference is checked.

    A reference to `customers.customer_id` falls back to the customers seen in accepted orders when the shop has
    no customers table; any other reference to an absent table is not checked.
    """
    lookups: dict[str, Any] = {}
    checked = set()
    for column in table.columns:
        if not column.references:
            continue
        keys = _reference_keys(column.references, accepted)
        if keys is None:
            continue
        positions = keys.get_indexer(typed[column.name])
        values = typed[column.name]
        lookups[known_column(column.name)] = (positions >= 0) | values.isna().to_numpy()
        checked.add(column.name)
        for other in table.columns:
            reached = other.not_before
            if reached and reached.startswith(column.references.split(".")[0] + "."):
                referenced_table, referenced_name = reached.split(".")
                lookups[referenced_column(reached)] = _look_up(
                    accepted[referenced_table][referenced_name], positions, typed.index
                )
    for column in table.columns:
        reached = column.not_before
        if reached and "." in reached and referenced_column(reached) not in lookups:
            # Referenced table absent: nothing to compare with.
            lookups[referenced_column(reached)] = pd.Series(pd.NaT, index=typed.index, dtype="datetime64[ns]")
    return typed.assign(**lookups), checked


def _look_up(values: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """values[positions] where a position was found (>= 0), else missing."""
    found = positions >= 0
    result = pd.Series(pd.NaT, index=index, dtype=values.dtype)
    result[found] = values.to_numpy()[positions[found]]
    return result


def _reference_keys(reference: str, accepted: dict[str, pd.DataFrame]) -> pd.Index | None:
    table_name, column_name = reference.split(".")
    if table_name in accepted:
        return pd.Index(accepted[table_name][column_name].dropna().unique())
    if reference == "customers.customer_id" and "orders" in accepted:
        return pd.Index(accepted["orders"]["customer_id"].dropna().unique())
    return None
