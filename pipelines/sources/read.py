"""Choosing the source named by `data.source` and what every source hands to validation."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines.sources.files import (
    SET_ASIDE_FILE,
    SET_ASIDE_ROW,
    SET_ASIDE_RULES,
    FolderSourceConfig,
    SourceTable,
    read_folder,
)

SOURCES = ("files", "online_retail", "olist")
# The rows an adapter set aside, in the quarantine folder.
SET_ASIDE_PARQUET = "source_rows.parquet"
__all__ = [
    "SET_ASIDE_FILE",
    "SET_ASIDE_PARQUET",
    "SET_ASIDE_ROW",
    "SET_ASIDE_RULES",
    "Source",
    "SourceRead",
    "read_source",
]


class Source(Protocol):
    """Contract tables, plus the source rows that could not be turned into contract rows.

    `accounting` counts the source's own rows (e.g. invoice lines): rows in = rows used + rows set aside, so nothing
    vanishes before validation starts counting the contract tables' rows. A source may read its tables as they are
    asked for (the folder source does), so `set_aside` and `accounting` are complete once every table was read.
    """

    @property
    def tables(self) -> MutableMapping[str, SourceTable]: ...

    @property
    def set_aside(self) -> pd.DataFrame | None: ...

    @property
    def accounting(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SourceRead:
    """A source an adapter read whole: its contract tables built from the source's own files at once."""

    tables: dict[str, SourceTable]
    set_aside: pd.DataFrame | None = None
    accounting: dict[str, Any] = field(default_factory=dict)


def read_source(data_params: dict[str, Any]) -> Source:
    source = data_params.get("source", "files")
    if source == "files":
        return read_folder(FolderSourceConfig.from_params(data_params))
    if source == "online_retail":
        from pipelines.sources.online_retail import read_online_retail

        return read_online_retail(_folder(data_params))
    if source == "olist":
        from pipelines.sources.olist import read_olist

        return read_olist(_folder(data_params))
    raise ValueError(f"unknown data.source {source!r}; choose one of {SOURCES}")


def _folder(data_params: dict[str, Any]) -> Path:
    if not data_params.get("path"):
        raise ValueError("data.path is not set: point it at the folder holding the source's files")
    return Path(data_params["path"])
