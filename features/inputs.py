"""The tables features read: validated contract tables as Ibis expressions, with what each source provides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ibis
import pandas as pd

from features.contract import TABLES

OPTIONAL_TABLES = tuple(table.name for table in TABLES if not table.required)


@dataclass(frozen=True)
class FeatureInputs:
    """Contract tables on one Ibis backend; an absent optional table is None."""

    orders: ibis.Table
    customers: ibis.Table | None
    reviews: ibis.Table | None
    tickets: ibis.Table | None
    returns: ibis.Table | None
    # The data's export time: labels need their whole window before it.
    as_of: pd.Timestamp
    # "table" and "table.column" names that hold data (an all-null column counts as absent).
    available: frozenset[str]

    def has(self, need: str) -> bool:
        return need in self.available


def inputs_from_tables(tables: dict[str, ibis.Table], as_of: pd.Timestamp) -> FeatureInputs:
    if "orders" not in tables:
        raise ValueError("features need the orders table")
    return FeatureInputs(
        orders=tables["orders"],
        customers=tables.get("customers"),
        reviews=tables.get("reviews"),
        tickets=tables.get("tickets"),
        returns=tables.get("returns"),
        as_of=as_of,
        available=frozenset(_available(tables)),
    )


def read_validated(con: ibis.BaseBackend, folder: Path, as_of: pd.Timestamp) -> FeatureInputs:
    """Register the validated Parquet tables found in `folder` on `con` (DuckDB by default)."""
    tables = {}
    for table in TABLES:
        path = folder / f"{table.name}.parquet"
        if path.is_file():
            tables[table.name] = con.read_parquet(path, table_name=f"validated_{table.name}")
    return inputs_from_tables(tables, as_of)


def inputs_from_frames(frames: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> FeatureInputs:
    """In-memory tables on a fresh DuckDB connection (tests and notebooks)."""
    con = ibis.duckdb.connect()
    return inputs_from_tables({name: con.create_table(name, frame) for name, frame in frames.items()}, as_of)


def _available(tables: dict[str, ibis.Table]) -> set[str]:
    available = set()
    for name, table in tables.items():
        counts = table.aggregate(**{column: table[column].count() for column in table.columns}).execute()
        if counts.empty:
            continue
        available.add(name)
        available |= {f"{name}.{column}" for column in table.columns if int(counts[column].iloc[0]) > 0}
    return available
