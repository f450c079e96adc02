"""A folder of per-table CSV or Parquet files, with column and value mappings onto the contract.

The raw rows are kept as read (CSV cells as text), so quarantine can show a bad row exactly as the source had it;
renaming, value mapping and type coercion happen in validation.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TABLES

log = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    encoding: str = "utf-8"


@dataclass(frozen=True)
class SourceTable:
    """One table as the source had it, plus how its columns and values map onto the contract."""

    name: str
    raw: pd.DataFrame
    origin: str
    # source column name -> contract column name
    column_mapping: dict[str, str] = field(default_factory=dict)
    # contract column name -> {source value: contract value}
    value_mapping: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderSourceConfig:
    path: Path
    csv: CsvOptions = CsvOptions()
    # table name -> file name inside `path`, when it is not <table>.parquet or <table>.csv
    files: dict[str, str] = field(default_factory=dict)
    column_mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    value_mapping: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_params(cls, data_params: dict[str, Any]) -> FolderSourceConfig:
        return cls(
            path=Path(data_params["path"]),
            csv=CsvOptions(**(data_params.get("csv") or {})),
            files=data_params.get("files") or {},
            column_mapping=data_params.get("column_mapping") or {},
            value_mapping=data_params.get("value_mapping") or {},
        )


def read_folder(config: FolderSourceConfig) -> dict[str, SourceTable]:
    """Read every contract table present in the folder; absent optional tables are simply not returned."""
    if not config.path.is_dir():
        raise ValueError(f"data folder {config.path} does not exist; set data.path in params.yaml")
    unknown = set(config.files) | set(config.column_mapping) | set(config.value_mapping)
    unknown -= {table.name for table in TABLES}
    if unknown:
        raise ValueError(f"params name tables that are not in the contract: {sorted(unknown)}")
    tables = {}
    for table in TABLES:
        path = _find_file(config, table.name)
        if path is None:
            continue
        log.info("reading %s from %s", table.name, path)
        tables[table.name] = SourceTable(
            name=table.name,
            raw=_read_file(path, config.csv),
            origin=str(path),
            column_mapping=config.column_mapping.get(table.name, {}),
            value_mapping={
                column: {str(k): str(v) for k, v in mapping.items()}
                for column, mapping in config.value_mapping.get(table.name, {}).items()
            },
        )
    return tables


def _find_file(config: FolderSourceConfig, table: str) -> Path | None:
    if table in config.files:
        path = config.path / config.files[table]
        if not path.is_file():
            raise ValueError(f"data.files.{table} names {path}, which does not exist")
        return path
    candidates = [config.path / f"{table}{suffix}" for suffix in SUFFIXES]
    found = [path for path in candidates if path.is_file()]
    if len(found) > 1:
        raise ValueError(f"both {found[0]} and {found[1]} exist; keep one or name it in data.files.{table}")
    return found[0] if found else None


def _read_file(path: Path, options: CsvOptions) -> pd.DataFrame:
    if path.suffix == ".parquet":
        # Arrow-backed strings: a tenth of the memory of Python string objects on large tables.
        return pq.read_table(path).to_pandas(types_mapper=_arrow_strings)
    if path.suffix == ".csv":
        return read_csv(path, options)
    raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def read_csv(path: Path, options: CsvOptions) -> pd.DataFrame:
    """Read a CSV as text cells, turning a wrong encoding or delimiter into an error that says how to fix it."""
    try:
        frame = pd.read_csv(
            path,
            sep=options.delimiter,
            encoding=options.encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid {options.encoding} ({error.reason} at byte {error.start}); "
            "set data.csv.encoding in params.yaml (e.g. latin-1 or cp1252)"
        ) from error
    except pd.errors.ParserError as error:
        raise ValueError(f"{path} could not be parsed as CSV with delimiter {options.delimiter!r}: {error}") from error
    if frame.shape[1] == 1:
        sniffed = _sniff_delimiter(path, options.encoding)
        if sniffed and sniffed != options.delimiter:
            raise ValueError(
                f"{path} has a single column {frame.columns[0]!r} when read with delimiter {options.delimiter!r}; "
                f"it looks {sniffed!r}-delimited: set data.csv.delimiter in params.yaml"
            )
    return frame


def _arrow_strings(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def _sniff_delimiter(path: Path, encoding: str) -> str | None:
    with path.open(encoding=encoding, errors="replace") as handle:
        sample = handle.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return None
