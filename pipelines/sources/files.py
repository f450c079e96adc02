"""A folder of per-table CSV or Parquet files, with column and value mappings onto the contract.

The raw rows are kept as read (CSV cells as text), so quarantine can show a bad row exactly as the source had it;
renaming, value mapping and type coercion happen in validation.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TABLES
from pipelines.sources.options import ReadOptions, table_options

log = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv")
# Bytes of a file read to detect its encoding.
SAMPLE_BYTES = 2 * 1024 * 1024
# Why a line of a CSV file is not a row: set aside (counted, kept) before validation.
BLANK_LINE = "blank_line"
# Columns of a set-aside source row besides the source's own: where it came from and why it was not used.
SET_ASIDE_FILE = "_file"
SET_ASIDE_ROW = "_source_row"
SET_ASIDE_RULES = "_rules"
REPEATED_HEADER = "repeated_header"
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class SourceTable:
    """One table as the source had it, plus how its columns and values map onto the contract.

    `raw`'s index is each row's position among the source file's data rows, so quarantine can point back to it.
    """

    name: str
    raw: pd.DataFrame
    origin: str
    # source column name -> contract column name
    column_mapping: dict[str, str] = field(default_factory=dict)
    # contract column name -> {source value: contract value}
    value_mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    # how its text cells are read (numbers, dates, ids, missing values)
    options: ReadOptions = field(default_factory=ReadOptions)


@dataclass(frozen=True)
class FolderSourceConfig:
    path: Path
    csv: ReadOptions = field(default_factory=ReadOptions)
    # table name -> file name inside `path`, when it is not <table>.parquet or <table>.csv
    files: dict[str, str] = field(default_factory=dict)
    column_mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    value_mapping: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # table name -> its reading options, where data.per_table overrides data.csv
    per_table: dict[str, ReadOptions] = field(default_factory=dict)

    @classmethod
    def from_params(cls, data_params: dict[str, Any]) -> FolderSourceConfig:
        per_table = data_params.get("per_table") or {}
        return cls(
            path=Path(data_params["path"]),
            csv=ReadOptions.from_params(data_params.get("csv") or {}),
            files=data_params.get("files") or {},
            column_mapping=data_params.get("column_mapping") or {},
            value_mapping=data_params.get("value_mapping") or {},
            per_table={table: table_options(data_params, table) for table in per_table},
        )

    def options(self, table: str) -> ReadOptions:
        return self.per_table.get(table, self.csv)


@dataclass(frozen=True)
class FolderRead:
    tables: dict[str, SourceTable]
    # CSV lines that are not rows (blank lines, the header repeated), with their file, row number and reason
    set_aside: pd.DataFrame | None
    accounting: dict[str, Any]


def read_folder(config: FolderSourceConfig) -> FolderRead:
    """Read every contract table present in the folder; absent optional tables are simply not returned."""
    if not config.path.is_dir():
        raise ValueError(f"data folder {config.path} does not exist; set data.path in params.yaml")
    unknown = set(config.files) | set(config.column_mapping) | set(config.value_mapping) | set(config.per_table)
    unknown -= {table.name for table in TABLES}
    if unknown:
        raise ValueError(f"params name tables that are not in the contract: {sorted(unknown)}")
    tables = {}
    set_aside = []
    for table in TABLES:
        path = _find_file(config, table.name)
        if path is None:
            continue
        log.info("reading %s from %s", table.name, path)
        options = config.options(table.name)
        rows, noise = split_noise_lines(_read_file(path, options))
        if not noise.empty:
            set_aside.append(noise.assign(**{SET_ASIDE_FILE: str(path)}))
        tables[table.name] = SourceTable(
            name=table.name,
            raw=rows,
            origin=str(path),
            column_mapping=config.column_mapping.get(table.name, {}),
            value_mapping={
                column: {str(k): str(v) for k, v in mapping.items()}
                for column, mapping in config.value_mapping.get(table.name, {}).items()
            },
            options=options,
        )
    aside = pd.concat(set_aside, ignore_index=True) if set_aside else None
    return FolderRead(tables=tables, set_aside=aside, accounting=_line_accounting(tables, aside))


def split_noise_lines(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows, and the lines that are not rows: blank (every cell empty) or the header line repeated, as exports
    that were concatenated or opened and saved in a spreadsheet have them. The set-aside lines keep their row
    number and get the reason in `_rules`.

    Cells are compared as text, but only where they could still be a header: text columns first, then any other
    column on the rows still in question (on a typed Parquet file, none), so timestamps and numbers of millions of
    rows are never written out as strings."""
    blank = np.ones(len(frame), dtype=bool)
    for column in frame.columns:
        blank &= frame[column].isna().to_numpy(dtype=bool)
    header = np.ones(len(frame), dtype=bool)
    texts_first = sorted(frame.columns, key=lambda column: not _holds_text(frame[column]))
    for position, column in enumerate(texts_first):
        rows = np.flatnonzero(header) if position else slice(None)
        values = frame[column].iloc[rows]
        cells = values if _holds_text(values) else values.astype("string")
        header[rows] = (cells.str.strip() == str(column).strip()).fillna(False).to_numpy(dtype=bool)
        if not header.any():
            break
    noise = blank | header
    aside = frame[noise].astype("string")
    aside.insert(0, SET_ASIDE_RULES, np.where(blank[noise], BLANK_LINE, REPEATED_HEADER))
    aside.insert(0, SET_ASIDE_ROW, frame.index[noise])
    # Without noise every row is kept as read: `frame[~noise]` would copy every cell (a second copy of 15M order
    # lines in memory while the first is freed).
    return frame[~noise] if noise.any() else frame, aside.reset_index(drop=True)


def _holds_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype)


def _line_accounting(tables: dict[str, SourceTable], aside: pd.DataFrame | None) -> dict[str, Any]:
    """Rows in = rows used + lines set aside; empty when no line was set aside (nothing to account for)."""
    if aside is None:
        return {}
    used = sum(len(table.raw) for table in tables.values())
    return {
        "source": "files",
        "unit": "data lines",
        "rows_in": used + len(aside),
        "rows_used": used,
        "rows_set_aside": len(aside),
        "set_aside_by_rule": {str(k): int(v) for k, v in aside[SET_ASIDE_RULES].value_counts().items()},
        "tables": {name: len(table.raw) for name, table in tables.items()},
    }


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


def _read_file(path: Path, options: ReadOptions) -> pd.DataFrame:
    if path.suffix == ".parquet":
        # Arrow-backed strings: a tenth of the memory of Python string objects on large tables.
        return pq.read_table(path).to_pandas(types_mapper=_arrow_strings)
    if path.suffix == ".csv":
        return read_csv(path, options, keep_blank_lines=True)
    raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def read_csv(path: Path, options: ReadOptions, keep_blank_lines: bool = False) -> pd.DataFrame:
    """Read a CSV as text cells (names trimmed, a UTF-8 byte-order mark dropped whatever the encoding), turning a
    wrong encoding or delimiter into an error that says how to fix it."""
    with path.open("rb") as handle:
        start = handle.read(4)
        if start.startswith(UTF16_BOMS) and "16" not in options.encoding:
            raise ValueError(
                f"{path} is UTF-16 (it starts with a UTF-16 byte-order mark); set data.csv.encoding: utf-16"
            )
        handle.seek(len(codecs.BOM_UTF8) if start.startswith(codecs.BOM_UTF8) else 0)
        text = io.TextIOWrapper(handle, encoding=options.encoding, newline="")
        try:
            frame = pd.read_csv(
                text,
                sep=options.delimiter,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=not keep_blank_lines,
            )
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path} is not valid {options.encoding} ({error.reason} at byte {error.start}); "
                f"set data.csv.encoding in params.yaml ({_encoding_suggestion(path)})"
            ) from error
        except pd.errors.EmptyDataError as error:
            raise ValueError(f"{path} is empty: not even a header line") from error
        except pd.errors.ParserError as error:
            raise ValueError(
                f"{path} could not be parsed as CSV with delimiter {options.delimiter!r}: {error}"
            ) from error
    frame.columns = [str(column).strip() for column in frame.columns]
    if frame.shape[1] == 1:
        sniffed = sniff_delimiter(path, options.encoding)
        if sniffed and sniffed != options.delimiter:
            raise ValueError(
                f"{path} has a single column {frame.columns[0]!r} when read with delimiter {options.delimiter!r}; "
                f"it looks {sniffed!r}-delimited: set data.csv.delimiter in params.yaml"
            )
    return frame


def _encoding_suggestion(path: Path) -> str:
    encoding, others = detect_encoding(path.read_bytes()[:SAMPLE_BYTES])
    if encoding is None:
        return "e.g. cp1252 or latin-1"
    return f"it reads as {encoding}" + (f"; {', '.join(others)} would read it differently" if others else "")


def detect_encoding(sample: bytes) -> tuple[str | None, list[str]]:
    """The encoding of a file's first bytes, and the other plausible ones that would read them differently.

    UTF-8 when the bytes are valid UTF-8 (with or without a byte-order mark); else the charset detector's
    candidates, Windows-1252 first when it is one of them: the encoding of Western European Excel exports, and a
    superset of Latin-1's printable characters."""
    if sample.startswith(UTF16_BOMS):
        return "utf-16", []
    try:
        sample.removeprefix(codecs.BOM_UTF8).decode("utf-8")
        return "utf-8", []
    except UnicodeDecodeError as error:
        if error.start > len(sample) - 4:  # the sample cut a character in two
            return "utf-8", []
    from charset_normalizer import from_bytes

    names = [codecs.lookup(match.encoding).name for match in from_bytes(sample)]
    names = list(dict.fromkeys("cp1252" if name in ("iso8859-1", "latin-1") else name for name in names))
    if not names:
        return None, []
    chosen = "cp1252" if "cp1252" in names else names[0]
    text = sample.decode(chosen, errors="replace")
    others = [name for name in names if name != chosen and sample.decode(name, errors="replace") != text]
    return chosen, others[:2]  # the detector ranks its candidates: the next two are the ones worth naming


def _arrow_strings(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def sniff_delimiter(path: Path, encoding: str) -> str | None:
    with path.open(encoding=encoding, errors="replace") as handle:
        sample = handle.read(64 * 1024).lstrip("\ufeff")
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return None
