"""Validate source tables against the contract: every row is either accepted or quarantined with its rules."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from features.contract import TABLES, Table
from pipelines.sources.files import SourceTable
from pipelines.validation.coerce import coerce_table
from pipelines.validation.keys import repeated, unique_column_classes
from pipelines.validation.suite import (
    ReferenceKeys,
    add_day_columns,
    add_lookup_columns,
    build_suite,
    columns_read_by_other_tables,
    duplicate_row_rule,
    equality_column,
    reference_positions,
)

log = logging.getLogger(__name__)

# A table's checked rows (with lookup columns), its name and its suite -> rule id -> the rows (index labels) that
# broke the rule.
SuiteRunner = Callable[[pd.DataFrame, str, Any], dict[str, np.ndarray]]

RULES_COLUMN = "_rules"
SOURCE_ROW_COLUMN = "_source_row"


@dataclass
class TableReport:
    table: str
    origin: str | None
    present: bool
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    missing_optional_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    date_only_columns: list[str] = field(default_factory=list)
    rewrites: dict[str, int] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def quarantined_share(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "quarantined_share": round(self.quarantined_share, 6)}


@dataclass
class ValidationResult:
    accepted: dict[str, pd.DataFrame]
    quarantined: dict[str, pd.DataFrame]
    reports: list[TableReport]
    as_of: pd.Timestamp

    def over_threshold(self, max_share: float) -> list[TableReport]:
        return [report for report in self.reports if report.quarantined_share > max_share]


def validate_tables(
    sources: MutableMapping[str, SourceTable],
    as_of: pd.Timestamp,
    suite_runner: SuiteRunner | None = None,
    *,
    release: bool = False,
    on_validated: Callable[[str, pd.DataFrame, pd.DataFrame], None] | None = None,
    keep_accepted: bool = True,
) -> ValidationResult:
    """Validate every contract table the source has, in reference order (customers, orders, then the rest).
    `suite_runner` runs a table's suite (default: Great Expectations' pandas datasource; on Spark,
    `pipelines.validation.spark_suite`). With `release`, each table is taken out of `sources` as it is validated,
    so its raw rows can be freed before the next table is read (the quarantine keeps the rejected ones); a source
    that reads its tables as they are asked for (the folder source) then holds one raw table at a time.
    `on_validated(name, accepted, quarantined)` is called as each table is done (the stage writes it then). Without
    `keep_accepted`, the accepted rows are handed over to `on_validated` alone: the result has none, and of each
    table only the columns later tables' rules read are kept (on 8.4M orders, most of a gigabyte freed before the
    order lines' peak)."""
    if not keep_accepted and on_validated is None:
        raise ValueError("keep_accepted=False needs on_validated to hand the accepted rows to")
    if "orders" not in sources:
        raise ValueError("the source has no orders table, the one table the contract requires")
    run_suite = pandas_suite_runner(_gx_context()) if suite_runner is None else suite_runner
    accepted: dict[str, pd.DataFrame] = {}
    references = ReferenceKeys(accepted)
    quarantined: dict[str, pd.DataFrame] = {}
    # "table.column" of every timestamp column holding days, for the time-order rules of later tables
    date_only: set[str] = set()
    reports = []
    for table in TABLES:
        source = sources.pop(table.name, None) if release else sources.get(table.name)
        if source is None:
            reports.append(TableReport(table=table.name, origin=None, present=False))
            continue
        started = time.perf_counter()
        accepted[table.name], quarantined[table.name], report = validate_table(
            source, table, accepted, references, as_of, run_suite, date_only
        )
        reports.append(report)
        if table.name == "orders" and accepted["orders"].empty:
            raise ValueError("orders: no row passed validation, so there is nothing to learn from")
        log.info(
            "%s: %d rows in, %d accepted, %d quarantined (%.1f s)",
            table.name,
            report.rows_in,
            report.accepted,
            report.quarantined,
            time.perf_counter() - started,
        )
        if on_validated is not None:
            on_validated(table.name, accepted[table.name], quarantined[table.name])
        if not keep_accepted:
            # A copy: the kept NumPy columns would otherwise hold the whole blocks they were cut from.
            accepted[table.name] = accepted[table.name][columns_read_by_other_tables(table)].copy()
        # Its raw rows go before the next table is read (the name would hold them until it is reassigned).
        del source
    return ValidationResult(
        accepted=accepted if keep_accepted else {}, quarantined=quarantined, reports=reports, as_of=as_of
    )


def validate_table(
    source: SourceTable,
    table: Table,
    accepted: dict[str, pd.DataFrame],
    references: ReferenceKeys,
    as_of: pd.Timestamp,
    run_suite: SuiteRunner,
    date_only: set[str],
) -> tuple[pd.DataFrame, pd.DataFrame, TableReport]:
    """Accepted rows, quarantined rows and the report of one table; adds its day-only columns to `date_only`."""
    if table.required and source.raw.empty:
        raise ValueError(f"{source.origin}: table {table.name} has no rows")
    coerced = coerce_table(source, table)
    date_only |= {f"{table.name}.{column}" for column in coerced.date_only_columns}
    # Only this name holds the typed rows, so they go as soon as the accepted rows are copied out (peak memory).
    typed, coerced = coerced.typed, replace(coerced, typed=pd.DataFrame())
    failures = dict(coerced.cast_failures)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate-lookups") as lookups:
        # Arrow hashes without holding the GIL: the references are looked up (every row's; the checked ones are
        # taken below) on the second core while this one hashes the table's own keys.
        looked_up = lookups.submit(reference_positions, typed, table, references)
        equalities = unique_column_classes(typed, table)
        duplicates = exact_duplicates(typed, table, equalities)
        if duplicates.any():
            failures[duplicate_row_rule(table)] = duplicates
        unreadable = np.zeros(len(typed), dtype=bool)
        for mask in coerced.cast_failures.values():
            unreadable |= mask
        # A row with an unreadable cell is quarantined for that alone: its null cell would only echo as "not_null".
        keep = ~duplicates & ~unreadable
        checked_equalities = {name: classes[keep] for name, classes in equalities.items()}
        del equalities
        checked_positions = {name: positions[keep] for name, positions in looked_up.result().items()}
        del looked_up  # its result holds every row's positions (120 MB for 15M lines) to the table's end otherwise
    # The checked rows are passed, not kept: they are gone before the accepted rows are copied out (peak memory).
    broken = suite_failures(
        select_rows(typed, keep), checked_equalities, checked_positions, table, accepted, as_of, run_suite, date_only
    )
    del checked_equalities, checked_positions
    for rule, positions in broken.items():
        mask = np.zeros(len(typed), dtype=bool)
        mask[positions] = True
        failures[rule] = failures[rule] | mask if rule in failures else mask
    rejected = np.zeros(len(typed), dtype=bool)
    for mask in failures.values():
        rejected |= mask
    kept = select_rows(typed, ~rejected, renumbered=True)
    del typed
    accepted_rows = cap_days_at_as_of(kept, table, coerced.date_only_columns, as_of)
    del kept
    quarantined_rows = _quarantine_rows(source.raw, failures, rejected)
    report = TableReport(
        table=table.name,
        origin=source.origin,
        present=True,
        rows_in=len(source.raw),
        accepted=len(accepted_rows),
        quarantined=len(quarantined_rows),
        rule_counts={rule: int(mask.sum()) for rule, mask in sorted(failures.items())},
        missing_optional_columns=coerced.missing_optional_columns,
        ignored_columns=coerced.ignored_columns,
        date_only_columns=coerced.date_only_columns,
        rewrites=coerced.rewrites,
        hints=coerced.hints,
        warnings=coerced.warnings,
    )
    if report.accepted + report.quarantined != report.rows_in:
        raise RuntimeError(
            f"{table.name}: {report.rows_in} rows in but {report.accepted} accepted + {report.quarantined} "
            "quarantined; validation lost rows"
        )
    return accepted_rows, quarantined_rows, report


def select_rows(frame: pd.DataFrame, keep: np.ndarray, renumbered: bool = False) -> pd.DataFrame:
    """`frame[keep]` for a boolean mask, column by column: an Arrow-backed column is filtered by Arrow in one pass
    over the kept text, where the frame's boolean indexing takes each column's rows by number (on 15M ids, six
    times the CPU). `renumbered`: indexed 0, 1, ... as `.reset_index(drop=True)` would, without its copy of every
    NumPy-backed column."""
    if not frame.columns.is_unique:
        return frame[keep].reset_index(drop=True) if renumbered else frame[keep]
    index = pd.RangeIndex(int(np.count_nonzero(keep))) if renumbered else frame.index[keep]
    columns = {name: frame[name].array[keep] for name in frame.columns}
    return pd.DataFrame(columns, index=index, columns=frame.columns, copy=False)


def suite_failures(
    checked: pd.DataFrame,
    equalities: dict[str, pd.Series],
    positions: dict[str, np.ndarray],
    table: Table,
    accepted: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    run_suite: SuiteRunner,
    date_only: set[str],
) -> dict[str, np.ndarray]:
    """Rule id -> the rows (index labels of `checked`) that broke it, by the table's suite (`equalities` and
    `positions`: the unique columns' classes and the references' positions of these rows). The frame GX sees, with
    its lookup columns, lives only here: it is gone before the accepted rows are copied out (peak memory)."""
    with_lookups, checked_references = add_lookup_columns(checked, table, accepted, positions, equalities)
    with_lookups = add_day_columns(with_lookups, table, date_only)
    suite = build_suite(table, as_of, checked_references, date_only)
    return run_suite(with_lookups, table.name, suite)


def cap_days_at_as_of(
    accepted: pd.DataFrame, table: Table, date_only_columns: list[str], as_of: pd.Timestamp
) -> pd.DataFrame:
    """An event of as-of's own day, stored as the day's end, was known by the export at the latest."""
    capped = {
        name: accepted[name].clip(upper=as_of) for name in date_only_columns if not table.column(name).may_be_future
    }
    if not capped:
        return accepted
    # The other columns as they are: `assign` would copy each of them (the timestamps of 8.4M orders).
    columns = {name: capped[name] if name in capped else accepted[name] for name in accepted.columns}
    return pd.DataFrame(columns, index=accepted.index, columns=accepted.columns, copy=False)


def exact_duplicates(typed: pd.DataFrame, table: Table, equalities: dict[str, pd.Series]) -> np.ndarray:
    """Rows equal in every column to an earlier row. With a key, only rows sharing a key can be equal, so the
    full-row comparison runs on those alone (on 8M orders: seconds instead of half a minute); keep="first" marks the
    same rows, since each group of equal rows is among them whole and in order. `equalities`: from
    `keys.unique_column_classes` (the key is unique), so the key's text is not hashed again."""
    if table.key is None:
        return typed.duplicated(keep="first").to_numpy()
    candidates = repeated(equalities[equality_column(table.key)])
    duplicates = np.zeros(len(typed), dtype=bool)
    if candidates.any():
        duplicates[candidates] = typed[candidates].duplicated(keep="first").to_numpy()
    return duplicates


def pandas_suite_runner(context: Any) -> SuiteRunner:
    """The default suite runner: Great Expectations' pandas datasource in `context` (from `gx_context`)."""
    return partial(_run_suite, context=context)


def _run_suite(frame: pd.DataFrame, table_name: str, suite: Any, context: Any) -> dict[str, np.ndarray]:
    """Run the table's expectation suite; rule id -> row positions (index labels of `frame`) that broke it.

    Each group of expectations on the same columns runs on a batch of just those columns (same rows, same index):
    GX's pandas engine copies the whole batch for every column it drops nulls from."""
    from great_expectations.validator.v1_validator import Validator

    broken: dict[str, np.ndarray] = {}
    # A datasource keeps every batch it loaded for as long as it exists: one per table, deleted after it, lets the
    # table's frames go (with one for all tables, every table's checked rows stayed in memory to the end).
    datasource = context.data_sources.add_pandas(f"contract.{table_name}")
    try:
        with without_batch_fingerprints():
            for part, (columns, expectations) in enumerate(expectations_by_columns(suite).items()):
                definition = datasource.add_dataframe_asset(str(part)).add_batch_definition_whole_dataframe("all rows")
                validator = Validator(
                    batch_definition=definition,
                    batch_parameters={"dataframe": batch_rows(frame, columns, expectations)},
                    result_format={"result_format": "COMPLETE"},
                )
                for rule, rows in broken_rows(validator.validate_expectation_suite(expectations), table_name).items():
                    broken[rule] = np.union1d(broken[rule], rows) if rule in broken else rows
    finally:
        context.data_sources.delete(datasource.name)
    return broken


def batch_rows(frame: pd.DataFrame, columns: tuple[str, ...], expectations: Any) -> pd.DataFrame:
    """The columns of `frame` one part of the suite reads; for a part whose every expectation ignores the rows
    missing either value, without those rows (same index labels). GX's pandas engine drops them itself, with a
    row-by-row copy for every metric it computes (several per expectation: a third of GX's time at 1M); dropped
    once here, its own drop finds nothing and keeps every row as it is."""
    batch = frame[list(columns)]
    if all(
        getattr(expectation, "ignore_row_if", None) == "either_value_is_missing"
        for expectation in expectations.expectations
    ):
        batch = batch.dropna(how="any")
    return batch


@contextmanager
def without_batch_fingerprints() -> Iterator[None]:
    """GX's pandas engine fingerprints every in-memory batch under HASH_THRESHOLD bytes by hashing each cell, only to
    note it in the batch's metadata, which validation never reads; on text columns that hash took longer than the
    expectations themselves (38 s of 137 at 250k customers). A threshold of 0 skips it; nothing else reads it."""
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = threshold


def expectations_by_columns(suite: Any) -> dict[tuple[str, ...], Any]:
    """The suite split into suites whose expectations read the same columns, keyed by those columns."""
    import great_expectations as gx

    parts: dict[tuple[str, ...], Any] = {}
    for expectation in suite.expectations:
        columns = tuple(
            dict.fromkeys(
                getattr(expectation, field)
                for field in ("column", "column_A", "column_B")
                if isinstance(getattr(expectation, field, None), str)
            )
        )
        if columns not in parts:
            parts[columns] = gx.ExpectationSuite(name=f"{suite.name}[{', '.join(columns)}]")
        parts[columns].add_expectation(expectation.copy(update={"id": None}))
    return parts


def broken_rows(result: Any, table_name: str, index_column: str | None = None) -> dict[str, np.ndarray]:
    """Rule id -> the rows that broke it, from a suite's COMPLETE result: the index labels (pandas), or the values
    of `index_column` (a datasource without an index, such as Spark's)."""
    broken: dict[str, np.ndarray] = {}
    for expectation_result in result.results:
        if expectation_result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"{table_name}: expectation {expectation_result.expectation_config.type} could not run: "
                f"{expectation_result.exception_info.get('exception_message')}"
            )
        rows = expectation_result.result.get("unexpected_index_list") or []
        if index_column is not None:
            rows = [row[index_column] for row in rows]
        if rows:
            broken[expectation_result.expectation_config.meta["rule"]] = np.asarray(rows, dtype=np.int64)
    return broken


def gx_context() -> Any:
    """An ephemeral Great Expectations context, quiet and offline."""
    return _gx_context()


def _gx_context() -> Any:
    # The project must never talk to the internet; GX analytics would.
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _quarantine_rows(raw: pd.DataFrame, failures: dict[str, np.ndarray], rejected: np.ndarray) -> pd.DataFrame:
    """The rejected rows exactly as the source had them, with their source row number and the rules they broke."""
    positions = np.flatnonzero(rejected)
    rules_per_row: list[list[str]] = [[] for _ in positions]
    slot = np.full(len(rejected), -1)
    slot[positions] = np.arange(len(positions))
    for rule, mask in failures.items():
        for position in np.flatnonzero(mask):
            rules_per_row[slot[position]].append(rule)
    rows = raw.iloc[positions]
    source_rows = rows.index.to_numpy()  # the row's number in the source, counting any lines set aside before
    rows = rows.reset_index(drop=True)
    rows.insert(0, RULES_COLUMN, pd.array(["; ".join(sorted(r)) for r in rules_per_row], dtype="string"))
    rows.insert(0, SOURCE_ROW_COLUMN, source_rows)
    return rows


def top_rules(report: TableReport, n: int = 3) -> str:
    """The most broken rules with their counts, and how to read the unreadable cells where a setting would."""
    counts = Counter(report.rule_counts).most_common(n)
    return ", ".join(
        f"{rule} ({count}{'; ' + report.hints[rule] if rule in report.hints else ''})" for rule, count in counts
    )
