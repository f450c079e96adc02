"""Map a source table onto the contract's names, values and types, recording every cell that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import PANDAS_DTYPES, Column, Table
from pipelines.sources.files import SourceTable

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


@dataclass
class CoercedTable:
    typed: pd.DataFrame
    # rule id -> boolean mask of rows whose cell could not be cast
    cast_failures: dict[str, np.ndarray]
    missing_optional_columns: list[str]
    ignored_columns: list[str]


def map_onto_contract(source: SourceTable, table: Table) -> tuple[pd.DataFrame, list[str]]:
    """Rename source columns to contract names; returns the renamed frame and the source columns left unused."""
    unknown_targets = set(source.column_mapping.values()) - set(table.column_names)
    if unknown_targets:
        raise ValueError(
            f"data.column_mapping.{table.name} maps onto {sorted(unknown_targets)}, which are not columns of "
            f"{table.name} (contract columns: {table.column_names})"
        )
    renamed = source.raw.rename(columns=source.column_mapping)
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
    """Contract columns with contract dtypes; cells that fail to cast become null and are reported per row."""
    renamed, ignored = map_onto_contract(source, table)
    typed = {}
    failures = {}
    missing_optional = []
    for column in table.columns:
        if column.name not in renamed.columns:
            missing_optional.append(column.name)
            typed[column.name] = pd.Series(pd.NA, index=renamed.index, dtype=PANDAS_DTYPES[column.dtype])
            continue
        raw = renamed[column.name]
        mapping = source.value_mapping.get(column.name)
        if mapping:
            raw = raw.map(lambda value, m=mapping: m.get(str(value), value) if pd.notna(value) else value)
        values = cast_column(raw, column)
        failed = (raw.notna() & values.isna()).to_numpy()
        if failed.all() and len(raw) > 0:
            examples = raw[failed].astype(str).unique()[:3].tolist()
            raise ValueError(
                f"{source.origin}: column {table.name}.{column.name} cannot be read as {column.dtype} "
                f"(e.g. {examples}); check data.column_mapping and the file's format"
            )
        if failed.any():
            failures[f"{table.name}.{column.name}.cast"] = failed
        typed[column.name] = values
    return CoercedTable(
        typed=pd.DataFrame(typed, index=renamed.index).reset_index(drop=True),
        cast_failures=failures,
        missing_optional_columns=missing_optional,
        ignored_columns=ignored,
    )


def cast_column(values: pd.Series, column: Column) -> pd.Series:
    """Cast to the contract dtype; unreadable cells become null (the caller compares with the input)."""
    dtype = PANDAS_DTYPES[column.dtype]
    if column.dtype == "string":
        return _to_string(values).astype(dtype)
    if column.dtype == "timestamp":
        return _to_timestamp(values)
    if column.dtype == "float":
        return pd.to_numeric(values, errors="coerce").astype(dtype)
    if column.dtype == "int":
        numbers = pd.to_numeric(values, errors="coerce")
        integral = numbers.isna() | (numbers == np.round(numbers))
        return numbers.where(integral).astype(dtype)
    if column.dtype == "bool":
        return _to_bool(values)
    raise ValueError(f"unknown contract dtype {column.dtype!r}")


def _to_string(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values.dtype):
        # Identifiers read as floats (a CSV export with missing ids) must not become "17850.0".
        integral = values.dropna()
        if (integral == np.round(integral)).all():
            return values.astype("Int64").astype("string")
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        return values
    return values.astype("string")


def _to_timestamp(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[ns]")
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():  # other layouts (e.g. 12/1/2010 08:26) parse cell by cell, so only where ISO 8601 failed
        parsed[retry] = pd.to_datetime(values[retry], errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _to_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    words = values.astype("string").str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[words.isin(TRUE_WORDS).fillna(False).to_numpy(dtype=bool)] = True
    result[words.isin(FALSE_WORDS).fillna(False).to_numpy(dtype=bool)] = False
    return result
