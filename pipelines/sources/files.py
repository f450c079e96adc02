"""A folder of per-table CSV or Parquet files, with column and value mappings onto the contract.

The raw rows are kept as read (CSV cells as text), so quarantine can show a bad row exactly as the source had it;
renaming, value mapping and type coercion happen in validation.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Iterator, MutableMapping
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
# Rows of each CSV file read before validation starts, to find a file that cannot be read early.
FIRST_ROWS = 100
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


class FolderTables(MutableMapping[str, SourceTable]):
    """The folder's contract tables, each read from its file when first asked for and forgotten when taken out.

    Validation takes the tables one at a time (`pop`), so only the table being validated is held as read: at 10M
    orders the raw order lines (1.4 GiB) are not in memory while the orders are checked. Each table's lines that
    are not rows are set aside as it is read; `set_aside` and `accounting` need every table read."""

    def __init__(self, config: FolderSourceConfig, files: dict[str, Path]) -> None:
        self._config = config
        self._unread = dict(files)
        self._read: dict[str, SourceTable] = {}
        self._rows_used: dict[str, int] = {}
        self._noise: list[pd.DataFrame] = []

    def __getitem__(self, name: str) -> SourceTable:
        if name not in self._read:
            self._read[name] = self._read_table(name, self._unread.pop(name))
        return self._read[name]

    def __setitem__(self, name: str, table: SourceTable) -> None:
        self._unread.pop(name, None)
        self._read[name] = table
        self._rows_used[name] = len(table.raw)

    def __delitem__(self, name: str) -> None:
        if name in self._unread:
            raise KeyError(f"{name} was never read, so its rows could not be counted")
        del self._read[name]

    def __contains__(self, name: object) -> bool:
        return name in self._unread or name in self._read

    def __iter__(self) -> Iterator[str]:
        return iter([*self._read, *self._unread])

    def __len__(self) -> int:
        return len(self._read) + len(self._unread)

    @property
    def set_aside(self) -> pd.DataFrame | None:
        """The lines of every file that are not rows, with their file, row number and reason."""
        self._require_all_read("set_aside")
        return pd.concat(self._noise, ignore_index=True) if self._noise else None

    @property
    def accounting(self) -> dict[str, Any]:
        """Rows in = rows used + lines set aside; empty when no line was set aside (nothing to account for)."""
        aside = self.set_aside
        if aside is None:
            return {}
        used = sum(self._rows_used.values())
        return {
            "source": "files",
            "unit": "data lines",
            "rows_in": used + len(aside),
            "rows_used": used,
            "rows_set_aside": len(aside),
            "set_aside_by_rule": {str(k): int(v) for k, v in aside[SET_ASIDE_RULES].value_counts().items()},
            "tables": dict(self._rows_used),
        }

    def _read_table(self, name: str, path: Path) -> SourceTable:
        log.info("reading %s from %s", name, path)
        options = self._config.options(name)
        rows, noise = split_noise_lines(_read_file(path, options))
        if not noise.empty:
            self._noise.append(noise.assign(**{SET_ASIDE_FILE: str(path)}))
        self._rows_used[name] = len(rows)
        return SourceTable(
            name=name,
            raw=rows,
            origin=str(path),
            column_mapping=self._config.column_mapping.get(name, {}),
            value_mapping={
                column: {str(k): str(v) for k, v in mapping.items()}
                for column, mapping in self._config.value_mapping.get(name, {}).items()
            },
            options=options,
        )

    def _require_all_read(self, what: str) -> None:
        if self._unread:
            raise RuntimeError(f"{what} counts every table's lines, and {sorted(self._unread)} are not read yet")


@dataclass(frozen=True)
class FolderRead:
    """The folder source (a `pipelines.sources.read.Source`): its tables are read one at a time, as validation
    takes them."""

    tables: FolderTables

    @property
    def set_aside(self) -> pd.DataFrame | None:
        return self.tables.set_aside

    @property
    def accounting(self) -> dict[str, Any]:
        return self.tables.accounting


def read_folder(config: FolderSourceConfig) -> FolderRead:
    """Every contract table present in the folder, each read when validation reaches it; absent optional tables are
    simply not there. Each file's start is read now, so a wrong encoding mark, delimiter or an empty file is an error
    before any table is validated."""
    if not config.path.is_dir():
        raise ValueError(f"data folder {config.path} does not exist; set data.path in params.yaml")
    unknown = set(config.files) | set(config.column_mapping) | set(config.value_mapping) | set(config.per_table)
    unknown -= {table.name for table in TABLES}
    if unknown:
        raise ValueError(f"params name tables that are not in the contract: {sorted(unknown)}")
    files = {table.name: path for table in TABLES if (path := _find_file(config, table.name)) is not None}
    for name, path in files.items():
        _check_file_start(path, config.options(name))
    return FolderRead(FolderTables(config, files))


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


def _check_file_start(path: Path, options: ReadOptions) -> None:
    """Read the first rows of a CSV file, or a Parquet file's schema, so that a file this source cannot read fails
    with its message before validation starts; a bad byte further into a CSV file is found when it is read."""
    if path.suffix == ".parquet":
        try:
            pq.read_schema(path)
        except pa.ArrowInvalid as error:
            raise ValueError(f"{path} is not a readable Parquet file: {error}") from error
    elif path.suffix == ".csv":
        read_csv(path, options, keep_blank_lines=True, nrows=FIRST_ROWS)
    else:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def _read_file(path: Path, options: ReadOptions) -> pd.DataFrame:
    """The whole file (its type was checked by `_check_file_start`)."""
    if path.suffix == ".parquet":
        # Arrow-backed strings: a tenth of the memory of Python string objects on large tables.
        return pq.read_table(path).to_pandas(types_mapper=_arrow_strings)
    return read_csv(path, options, keep_blank_lines=True)


def read_csv(
    path: Path, options: ReadOptions, keep_blank_lines: bool = False, nrows: int | None = None
) -> pd.DataFrame:
    """Read a CSV (its first `nrows` rows) as text cells (names trimmed, a UTF-8 byte-order mark dropped whatever
    the encoding), turning a wrong encoding or delimiter into an error that says how to fix it."""
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
                nrows=nrows,
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
