"""Stage `validate`: read the configured source, validate it against the contract, write accepted and quarantined
rows and the validation report; fail when a table quarantines more than `validate.max_quarantine_share`."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.engine import engine_settings, local_path, spark_session
from pipelines.params import block, load_params
from pipelines.sources.read import SET_ASIDE_PARQUET, SourceRead, read_source
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

# The machines this runs on have two cores.
WRITER_THREADS = 2


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
        # Great Expectations' imports and context (seconds of Python) load while Arrow reads the files on its own
        # threads.
        with ThreadPoolExecutor(max_workers=1) as pool:
            context = pool.submit(gx_context)
            source = read_source(data_params)
            runner = pandas_suite_runner(context.result())
    # Released: each table's raw rows go once it is validated (write_outputs needs only the set-aside lines).
    result = validate_tables(source.tables, data_as_of(data_params), runner, release=True)
    failing = result.over_threshold(max_share)
    write_outputs(result, source, outputs, max_share, passed=not failing)
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


def write_outputs(
    result: ValidationResult, source: SourceRead, outputs: ValidateOutputs, max_share: float, passed: bool
) -> None:
    """The quarantine and the report always; the accepted tables only when validation passed, so that no later
    stage can read the rows of a failed validation as valid."""
    for folder in (outputs.validated_dir, outputs.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
        # A table absent from this source must not linger from an earlier run on another source.
        for stale in folder.glob("*.parquet"):
            stale.unlink()
    writes: list[tuple[pd.DataFrame, Path, dict[str, Any]]] = [
        # Timestamps in microseconds, the precision of the contract (a day's end is 23:59:59.999999) and the finest
        # Spark reads (engine: spark refuses Parquet nanoseconds); a source's sub-microsecond digits are dropped.
        (
            table,
            outputs.validated_dir / f"{name}.parquet",
            {"coerce_timestamps": "us", "allow_truncated_timestamps": True},
        )
        for name, table in (result.accepted.items() if passed else ())
    ]
    writes += [(table, outputs.quarantine_dir / f"{name}.parquet", {}) for name, table in result.quarantined.items()]
    if source.set_aside is not None:
        writes.append((source.set_aside, outputs.quarantine_dir / SET_ASIDE_PARQUET, {}))
    write_parquet_files(writes)
    write_reports(result, source.accounting, max_share, outputs.report_json, outputs.report_markdown)


def write_parquet_files(writes: list[tuple[pd.DataFrame, Path, dict[str, Any]]]) -> None:
    """Each frame to its Parquet file (without the index, with its own writer options), two at a time, largest
    first: Arrow converts, encodes and compresses without holding the GIL, so both cores write (one file is written
    by one thread)."""
    largest_first = sorted(writes, key=lambda write: len(write[0]), reverse=True)
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        done = [pool.submit(frame.to_parquet, path, index=False, **options) for frame, path, options in largest_first]
        for future in done:
            future.result()  # a failed write raises here
