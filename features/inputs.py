"""The tables features read: validated contract tables as Ibis expressions, with what each source provides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pandas as pd

from features.contract import PANDAS_DTYPES, TABLES, TABLES_BY_NAME, Column

IBIS_TYPES = {"string": "string", "timestamp": "timestamp", "float": "float64", "int": "int64", "bool": "boolean"}
# When a row itself came into being. The customers table is a register without one: it counts from the start.
ROW_TIMES = {"orders": "ordered_at", "reviews": "reviewed_at", "tickets": "opened_at", "returns": "returned_at"}
# A table whose rows came into being with a row of another: table -> (the key into it, that table). An order line is
# known from its order's time.
ROW_TIMES_VIA = {"order_lines": ("order_id", "orders")}
ROW_TIME = "__row_time"


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
    # For "table" and "table.column" names of tables with a row time: when the first value became known. A source
    # that starts recording something later (reviews from some year on) did not provide it at earlier cutoffs.
    first_known: Mapping[str, pd.Timestamp] = field(default_factory=dict)
    order_lines: ibis.Table | None = None

    def has(self, need: str) -> bool:
        return need in self.available

    def had_by(self, need: str, cutoff: pd.Timestamp) -> bool:
        """The source provides `need` and had recorded some of it before the cutoff (the customers table, a
        register without times, from the start)."""
        if not self.has(need) or need.split(".")[0] not in {*ROW_TIMES, *ROW_TIMES_VIA}:
            return self.has(need)
        first = self.first_known.get(need)
        return first is not None and first < cutoff


def inputs_from_tables(
    tables: dict[str, ibis.Table],
    as_of: pd.Timestamp,
    available: frozenset[str] | None = None,
    first_known: Mapping[str, pd.Timestamp] | None = None,
) -> FeatureInputs:
    """`available` defaults to what the tables hold; pass the training data's to score with the same schema.
    `first_known` defaults to what the tables say (`_first_known`)."""
    if "orders" not in tables:
        raise ValueError("features need the orders table")
    tables = {name: _with_contract_columns(name, table) for name, table in tables.items()}
    return FeatureInputs(
        orders=tables["orders"],
        customers=tables.get("customers"),
        reviews=tables.get("reviews"),
        tickets=tables.get("tickets"),
        returns=tables.get("returns"),
        order_lines=tables.get("order_lines"),
        as_of=as_of,
        available=frozenset(_available(tables)) if available is None else available,
        first_known=_first_known(tables) if first_known is None else first_known,
    )


def read_validated(con: ibis.BaseBackend, folder: Path | str, as_of: pd.Timestamp) -> FeatureInputs:
    """Register the validated Parquet tables found in `folder` on `con` (DuckDB by default). On Spark, `folder` may
    be any URI the session reads (s3a://, abfss://, hdfs://, a local path); a table found there may be a file or
    a folder of Parquet parts."""
    tables = {}
    for table in TABLES:
        location = f"{str(folder).rstrip('/')}/{table.name}.parquet"
        if is_uri(location):
            found = _read_uri(con, location, f"validated_{table.name}")
            if found is not None:
                tables[table.name] = found
        elif Path(location).exists():
            tables[table.name] = con.read_parquet(Path(location), table_name=f"validated_{table.name}")
    return inputs_from_tables(tables, as_of)


def is_uri(location: Path | str) -> bool:
    """A data-lake location (scheme://...) rather than a local path."""
    return "://" in str(location)


def _read_uri(con: ibis.BaseBackend, location: str, name: str) -> ibis.Table | None:
    """The table at `location`, or None when nothing is there (an optional table the source lacks)."""
    try:
        return con.read_parquet(location, table_name=name)
    except Exception as error:  # the backend's own "path not found" (Spark: AnalysisException PATH_NOT_FOUND)
        if "PATH_NOT_FOUND" in str(error) or "does not exist" in str(error):
            return None
        raise


def inputs_from_frames(
    frames: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    available: frozenset[str] | None = None,
    con: ibis.BaseBackend | None = None,
) -> FeatureInputs:
    """In-memory tables, cast to the contract's types, on `con` (tests and notebooks; a Spark connection, say) or on
    a fresh DuckDB connection. Each call names its tables afresh, so calls on one connection never clash."""
    typed = {name: _contract_types(name, frame) for name, frame in frames.items()}
    if con is None or con.name == "duckdb":
        con = ibis.duckdb.connect() if con is None else con
        tables = {name: con.create_table(ibis.util.gen_name(name), frame) for name, frame in typed.items()}
        return inputs_from_tables(tables, as_of, available)
    # What the frames hold and since when, from DuckDB (milliseconds; a Spark job each costs seconds): the same
    # aggregates on the same rows.
    local = inputs_from_frames(frames, as_of, available)
    tables = {
        name: con.create_table(ibis.util.gen_name(name), _spark_ready(name, frame)) for name, frame in typed.items()
    }
    return inputs_from_tables(tables, as_of, local.available, local.first_known)


def _spark_ready(name: str, frame: pd.DataFrame) -> ibis.Table:
    """The frame with None for missing text and the contract's types spelled out: a pandas NA in a text column
    reaches Spark as a pickled object, not a null (an empty category would count as one more category), and a
    column of nothing but None has no type Spark can store."""
    text = [column for column, dtype in frame.dtypes.items() if isinstance(dtype, pd.StringDtype)]
    frame = frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in text})
    contract = {column.name: IBIS_TYPES[column.dtype] for column in TABLES_BY_NAME[name].columns}
    inferred = ibis.memtable(frame).schema()
    return ibis.memtable(frame, schema={c: contract.get(c, inferred[c]) for c in frame.columns})


def _contract_types(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = {column.name: column for column in TABLES_BY_NAME[name].columns}
    return frame.astype({c: PANDAS_DTYPES[columns[c].dtype] for c in frame.columns if c in columns})


def _with_contract_columns(name: str, table: ibis.Table) -> ibis.Table:
    """Add any contract column the table lacks as typed nulls, as validation does."""
    missing = {
        column.name: ibis.null().cast(IBIS_TYPES[column.dtype])
        for column in TABLES_BY_NAME[name].columns
        if column.name not in table.columns
    }
    return table.mutate(**missing) if missing else table


def _available(tables: dict[str, ibis.Table]) -> set[str]:
    available = set()
    for name, table in tables.items():
        counts = table.aggregate(**{column: table[column].count() for column in table.columns}).execute()
        if counts.empty:
            continue
        available.add(name)
        available |= {f"{name}.{column}" for column in table.columns if int(counts[column].iloc[0]) > 0}
    return available


def _first_known(tables: dict[str, ibis.Table]) -> dict[str, pd.Timestamp]:
    """Per table with a row time, and per column of it, the earliest time a value was known: an event time column's
    own earliest value, any other column's earliest row time (or `known_from` time) among the rows where it is set."""
    first: dict[str, pd.Timestamp] = {}
    for name, table in tables.items():
        timed = _with_row_time(name, table, tables)
        if timed is None:
            continue
        row_time = timed[ROW_TIME]
        known_at = {column.name: _known_at(timed, column, row_time) for column in TABLES_BY_NAME[name].columns}
        times = (
            timed.aggregate(**{column: value.min() for column, value in known_at.items()}, **{ROW_TIME: row_time.min()})
            .execute()
            .iloc[0]
        )
        for column, time in times.drop(ROW_TIME).items():
            if pd.notna(time):
                first[f"{name}.{column}"] = pd.Timestamp(time)
        if pd.notna(times[ROW_TIME]):
            first[name] = pd.Timestamp(times[ROW_TIME])
    return first


def _with_row_time(name: str, table: ibis.Table, tables: dict[str, ibis.Table]) -> ibis.Table | None:
    """`table` with ROW_TIME, when its row came into being (its own time, or that of the row it belongs to); None
    for a table without one (the customers register, or lines without their orders)."""
    if name in ROW_TIMES:
        return table.mutate(**{ROW_TIME: table[ROW_TIMES[name]]})
    if name in ROW_TIMES_VIA and ROW_TIMES_VIA[name][1] in tables:
        key, owner = ROW_TIMES_VIA[name]
        owners = tables[owner]
        times = owners.select(**{key: owners[key], ROW_TIME: owners[ROW_TIMES[owner]]})
        return table.join(times, key)
    return None


def _known_at(table: ibis.Table, column: Column, row_time: ibis.Value) -> ibis.Value:
    if column.dtype == "timestamp" and not column.may_be_future:
        return table[column.name]
    known_from = row_time if column.known_from is None else table[column.known_from].fill_null(row_time)
    return ibis.ifelse(table[column.name].notnull(), known_from, ibis.null()).cast("timestamp")
