"""Stage `validate`: read the configured source, validate it against the contract, write accepted and quarantined
rows and the validation report; fail when a table quarantines more than `validate.max_quarantine_share`."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.engine import engine_settings, local_path, spark_session
from pipelines.params import block, load_params
from pipelines.sources.read import SET_ASIDE_PARQUET, read_source
from pipelines.validation.report import write_reports
from pipelines.validation.run import (
    SuiteRunner,
    ValidationResult,
    gx_context,
    pandas_suite_runner,
    top_rules,
    validate_tables,
)

log = logging.getLogger(__name__)

# Timestamps in microseconds, the precision of the contract (a day's end is 23:59:59.999999) and the finest Spark
# reads (engine: spark refuses Parquet nanoseconds); a source's sub-microsecond digits are dropped.
ACCEPTED_PARQUET_OPTIONS: dict[str, Any] = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}


@dataclass(frozen=True)
class ValidateOutputs:
    validated_dir: Path
    quarantine_dir: Path
    report_json: Path
    report_markdown: Path

    @classmethod
    def at(cls, validated: str, quarantine: str, report_json: Path, report_markdown: Path) -> ValidateOutputs:
        """The outputs where the command line puts them: the folders as local paths or file:// URIs (validation
        writes them on this machine)."""
        return cls(
            local_path(validated, "--validated"), local_path(quarantine, "--quarantine"), report_json, report_markdown
        )


class QuarantineLimitExceeded(ValueError):
    """More of a table was quarantined than `validate.max_quarantine_share` allows."""


def run(params_path: Path, outputs: ValidateOutputs, engine: str | None = None) -> ValidationResult:
    """`engine` overrides params' `engine`: on spark, the suite runs through Great Expectations' Spark datasource."""
    params = load_params(params_path)
    engine_name, spark_settings = engine_settings(params, engine)
    data_params = block(params, "data")
    max_share = float(block(params, "validate")["max_quarantine_share"])
    runner: SuiteRunner
    if engine_name == "spark":
        from pipelines.validation.spark_suite import spark_suite_runner

        source = read_source(data_params)
        runner = spark_suite_runner(spark_session(spark_settings))
    else:
        # Great Expectations' imports and context (seconds of Python) load while the source checks its files.
        with ThreadPoolExecutor(max_workers=1) as pool:
            context = pool.submit(gx_context)
            source = read_source(data_params)
            runner = pandas_suite_runner(context.result())
    with StagedOutputs(outputs) as staged:
        # Released: each table's raw rows go once it is validated (the quarantine keeps the rejected ones), and its
        # accepted rows once written, but for the columns later tables' rules read.
        result = validate_tables(
            source.tables,
            data_as_of(data_params),
            runner,
            release=True,
            on_validated=staged.table_validated,
            keep_accepted=False,
        )
        if source.set_aside is not None:
            staged.set_aside(source.set_aside)
        failing = result.over_threshold(max_share)
        staged.publish(passed=not failing)
    write_reports(result, source.accounting, max_share, outputs.report_json, outputs.report_markdown)
    if failing:
        details = "; ".join(
            f"{r.table}: {r.quarantined_share:.1%} of {r.rows_in:,} rows quarantined, mostly {top_rules(r)}"
            for r in failing
        )
        raise QuarantineLimitExceeded(
            f"too much bad data (limit validate.max_quarantine_share = {max_share:.1%}): {details}. "
            f"The rows are in {outputs.quarantine_dir}, the details in {outputs.report_markdown}"
        )
    return result


def data_as_of(data_params: dict[str, Any]) -> pd.Timestamp:
    """The time the data was exported: nothing may happen after it. Defaults to now (UTC)."""
    as_of = data_params.get("as_of")
    if as_of is None:
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    return pd.Timestamp(as_of)


class StagedOutputs:
    """The Parquet outputs written while validation goes on, published all at once at the end.

    Each table's accepted and quarantined rows are written as soon as it is validated, by one background thread,
    while the main thread validates the next table: Arrow converts, encodes and compresses without holding the GIL,
    so the writing runs on the second core instead of after the last table. They go into scratch folders beside
    the output folders (the same file system, so moving them is a rename); `publish` moves them into place. Until
    then the output folders are untouched: a validation that fails on an error leaves the earlier run's outputs as
    they were, and the scratch folders are removed on leaving the `with` block whatever happened."""

    def __init__(self, outputs: ValidateOutputs) -> None:
        self._targets = (outputs.validated_dir, outputs.quarantine_dir)
        self._scratch: dict[Path, Path] = {}
        for folder in self._targets:
            folder.parent.mkdir(parents=True, exist_ok=True)
            self._scratch[folder] = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate-writer")
        self._writes: list[Future[None]] = []

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Writes not started are dropped; one running finishes before its folder goes.
        self._writer.shutdown(wait=True, cancel_futures=True)
        for scratch in self._scratch.values():
            shutil.rmtree(scratch, ignore_errors=True)

    def table_validated(self, name: str, accepted: pd.DataFrame, quarantined: pd.DataFrame) -> None:
        """Write `name`'s rows in the background (accepted rows only reach the validated folder on `publish`)."""
        self._raise_failed_write()
        self._write(accepted, self._targets[0], f"{name}.parquet", ACCEPTED_PARQUET_OPTIONS)
        self._write(quarantined, self._targets[1], f"{name}.parquet", {})

    def set_aside(self, rows: pd.DataFrame) -> None:
        """The source lines an adapter set aside, to the quarantine folder."""
        self._write(rows, self._targets[1], SET_ASIDE_PARQUET, {})

    def publish(self, passed: bool) -> None:
        """Wait for every write (the first failed one raises here), then empty both output folders of Parquet files
        and move the written ones in: the quarantine always, the accepted tables only when validation `passed`, so
        that no later stage can read the rows of a failed validation as valid."""
        for write in self._writes:
            write.result()
        for folder in self._targets:
            folder.mkdir(parents=True, exist_ok=True)
            # A table absent from this source must not linger from an earlier run on another source.
            for stale in folder.glob("*.parquet"):
                stale.unlink()
        validated, quarantine = self._targets
        for folder in (quarantine, validated) if passed else (quarantine,):
            for written in sorted(self._scratch[folder].glob("*.parquet")):
                os.replace(written, folder / written.name)

    def _write(self, frame: pd.DataFrame, folder: Path, file_name: str, options: dict[str, Any]) -> None:
        path = self._scratch[folder] / file_name
        self._writes.append(self._writer.submit(write_parquet, frame, path, options))

    def _raise_failed_write(self) -> None:
        """A write that already failed stops the stage now rather than after the remaining tables."""
        for write in self._writes:
            if write.done():
                write.result()


def write_parquet(frame: pd.DataFrame, path: Path, options: dict[str, Any]) -> None:
    """`frame` to a Parquet file without its index, with its own writer options."""
    frame.to_parquet(path, index=False, **options)
