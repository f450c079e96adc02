"""Map a source table onto the contract's names, values and types, recording every cell that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import PANDAS_DTYPES, Column, Table
from pipelines.sources.files import SourceTable
from pipelines.sources.options import ReadOptions
from pipelines.validation.parse import (
    NUMBER_CONVENTIONS,
    check_grouping_ambiguity,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    python_text,
    trim_missing,
    zero_padded_twins,
)
from pipelines.validation.suite import END_OF_DAY

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
# The rule a cell breaks when it does not fit its column's format settings.
FORMAT_RULES = {
    "string": "cast",
    "bool": "cast",
    "float": "number_format",
    "int": "number_format",
    "timestamp": "date_format",
}


@dataclass
class CoercedTable:
    typed: pd.DataFrame
    # rule id -> boolean mask of rows whose cell could not be read
    cast_failures: dict[str, np.ndarray]
    missing_optional_columns: list[str]
    ignored_columns: list[str]
    # timestamp columns whose values are all days (no time of day): stored as the end of that day
    date_only_columns: list[str] = field(default_factory=list)
    # documented rewrites and their counts, e.g. "orders.customer_id.excel_float_id": 65
    rewrites: dict[str, int] = field(default_factory=dict)
    # rule id -> how the unreadable cells would read, when another setting reads them all
    hints: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def map_onto_contract(source: SourceTable, table: Table) -> tuple[pd.DataFrame, list[str]]:
    """Rename source columns to contract names; returns the renamed frame and the source columns left unused."""
    unknown_targets = set(source.column_mapping.values()) - set(table.column_names)
    if unknown_targets:
        raise ValueError(
            f"data.column_mapping.{table.name} maps onto {sorted(unknown_targets)}, which are not columns of "
            f"{table.name} (contract columns: {table.column_names})"
        )
    # Renaming copies every NumPy-backed column (the timestamps of 8.4M orders): read-only here, so only when a
    # mapping renames something.
    renamed = source.raw.rename(columns=source.column_mapping) if source.column_mapping else source.raw
    ignored = [column for column in renamed.columns if column not in table.column_names]
    duplicated = renamed.columns[renamed.columns.duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{source.origin}: after the column mapping, {duplicated} appear more than once")
    missing = [column for column in table.required_columns if column not in renamed.columns]
    if missing:
        raise ValueError(
            f"{source.origin}: table {table.name} lacks required column(s) {missing} "
            f"(found {list(source.raw.columns)}); map them with data.column_mapping.{table.name}"
        )
    return renamed, ignored


def coerce_table(source: SourceTable, table: Table) -> CoercedTable:
    """Contract columns with contract dtypes; cells that cannot be read become null and are reported per row."""
    renamed, ignored = map_onto_contract(source, table)
    options = source.options
    coerced = CoercedTable(
        typed=pd.DataFrame(index=renamed.index),
        cast_failures={},
        missing_optional_columns=[],
        ignored_columns=ignored,
    )
    typed = {}
    for column in table.columns:
        if column.name not in renamed.columns:
            coerced.missing_optional_columns.append(column.name)
            typed[column.name] = pd.Series(pd.NA, index=renamed.index, dtype=PANDAS_DTYPES[column.dtype])
            continue
        where = f"{source.origin}: {table.name}.{column.name}"
        raw = trim_missing(renamed[column.name], options.missing_values)
        mapping = source.value_mapping.get(column.name)
        if mapping:
            raw = python_text(raw).map(lambda value, m=mapping: m.get(str(value), value) if pd.notna(value) else value)
        typed[column.name] = _read_column(raw, column, table, options, where, coerced)
    # Numbered 0, 1, ... without copies: a frame built from a dict copies every NumPy column, and `reset_index`
    # copies them again (the typed order lines' numbers and times, while the raw rows are still held).
    columns = {name: values.array for name, values in typed.items()}
    coerced.typed = pd.DataFrame(columns, index=pd.RangeIndex(len(renamed)), columns=list(columns), copy=False)
    return coerced


def _read_column(
    raw: pd.Series, column: Column, table: Table, options: ReadOptions, where: str, coerced: CoercedTable
) -> pd.Series:
    """One column in its contract dtype; records its unreadable cells (with a hint), rewrites and date precision."""
    rule = f"{table.name}.{column.name}.{FORMAT_RULES[column.dtype]}"
    failed: np.ndarray
    if column.identifier:
        ids = parse_ids(raw, options.excel_ids)
        values = ids.values
        if ids.excel_floats_undone:
            coerced.rewrites[f"{table.name}.{column.name}.excel_float_id"] = ids.excel_floats_undone
        if ids.excel_scientific.any():
            coerced.cast_failures[f"{table.name}.{column.name}.excel_scientific_id"] = ids.excel_scientific
        twins = zero_padded_twins(values)
        if twins:
            coerced.warnings.append(
                f"{table.name}.{column.name}: ids that differ only by leading zeros are kept apart, e.g. "
                + ", ".join(f"{a!r} and {b!r}" for a, b in twins[:3])
            )
        return values
    if column.dtype != "string":
        # Numbers, dates and booleans are read with Python's regular expressions, whatever the text's storage.
        raw = python_text(raw)
    if column.dtype == "timestamp":
        parsed = parse_timestamps(raw, options.date_format, options.day_first, where)
        values = parsed.values
        if parsed.date_only:
            coerced.date_only_columns.append(column.name)
            # Known only by its day: it counts from the end of that day, never earlier than it could have happened.
            values = values + END_OF_DAY
    elif column.dtype in ("float", "int"):
        if options.thousands is None:
            check_grouping_ambiguity(raw, options.decimal, where)
        values = parse_numbers(raw, options.decimal, options.grouping)
        if column.dtype == "int":
            values = values.where(values.isna() | (values == np.round(values))).astype("Int64")
    else:
        values = cast_column(raw, column)
    failed = (raw.notna() & values.isna()).to_numpy()
    if not failed.any():
        return values
    examples = raw[failed].astype(str).unique()[:3].tolist()
    hint = _format_hint(raw[failed], column, options)
    if failed.all():
        raise ValueError(
            f"{where} cannot be read as {column.dtype} (e.g. {examples}); "
            + (hint or "check data.column_mapping and the file's format")
        )
    coerced.cast_failures[rule] = failed
    if hint:
        coerced.hints[rule] = hint
    return values


def _format_hint(unreadable: pd.Series, column: Column, options: ReadOptions) -> str | None:
    """The number separators under which every unreadable cell would read, said as the settings to change."""
    if column.dtype not in ("float", "int"):
        return None
    for decimal, thousands in NUMBER_CONVENTIONS:
        if (decimal, thousands) == (options.decimal, options.grouping):
            continue
        if parse_numbers(unreadable, decimal, thousands).notna().all():
            return (
                f"values like {unreadable.unique()[:2].tolist()} read as numbers with data.csv.decimal "
                f"{decimal!r} and data.csv.thousands {thousands!r}"
            )
    return None


def cast_column(values: pd.Series, column: Column) -> pd.Series:
    """Cast text or typed cells to a string or boolean contract column; unreadable cells become null."""
    dtype = PANDAS_DTYPES[column.dtype]
    if column.dtype == "string":
        return _to_string(values).astype(dtype)
    if column.dtype == "bool":
        return _to_bool(values)
    raise ValueError(f"{column.dtype} columns are parsed with their format settings, not cast")


def _to_string(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        return values
    return values.astype("string")


def _to_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    words = values.astype("string").str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[words.isin(TRUE_WORDS).fillna(False).to_numpy(dtype=bool)] = True
    result[words.isin(FALSE_WORDS).fillna(False).to_numpy(dtype=bool)] = False
    return result
