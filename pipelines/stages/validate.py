"""Stage `validate`: read the configured source, validate it against the contract, write accepted and quarantined
rows and the validation report; fail when a table quarantines more than `validate.max_quarantine_share`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.params import block, load_params
from pipelines.sources.files import FolderSourceConfig, SourceTable, read_folder
from pipelines.validation.report import write_reports
from pipelines.validation.run import ValidationResult, top_rules, validate_tables

log = logging.getLogger(__name__)

SOURCES = ("files",)


@dataclass(frozen=True)
class ValidateOutputs:
    validated_dir: Path
    quarantine_dir: Path
    report_json: Path
    report_markdown: Path


class QuarantineLimitExceeded(ValueError):
    """More of a table was quarantined than `validate.max_quarantine_share` allows."""


def run(params_path: Path, outputs: ValidateOutputs) -> ValidationResult:
    params = load_params(params_path)
    data_params = block(params, "data")
    max_share = float(block(params, "validate")["max_quarantine_share"])
    sources = read_source(data_params)
    result = validate_tables(sources, data_as_of(data_params))
    write_outputs(result, outputs, max_share)
    failing = result.over_threshold(max_share)
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


def read_source(data_params: dict[str, Any]) -> dict[str, SourceTable]:
    source = data_params.get("source", "files")
    if source == "files":
        return read_folder(FolderSourceConfig.from_params(data_params))
    raise ValueError(f"unknown data.source {source!r}; choose one of {SOURCES}")


def data_as_of(data_params: dict[str, Any]) -> pd.Timestamp:
    """The time the data was exported: nothing may happen after it. Defaults to now (UTC)."""
    as_of = data_params.get("as_of")
    if as_of is None:
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    return pd.Timestamp(as_of)


def write_outputs(result: ValidationResult, outputs: ValidateOutputs, max_share: float) -> None:
    outputs.validated_dir.mkdir(parents=True, exist_ok=True)
    outputs.quarantine_dir.mkdir(parents=True, exist_ok=True)
    for name, table in result.accepted.items():
        table.to_parquet(outputs.validated_dir / f"{name}.parquet", index=False)
    for name, table in result.quarantined.items():
        table.to_parquet(outputs.quarantine_dir / f"{name}.parquet", index=False)
    write_reports(result, max_share, outputs.report_json, outputs.report_markdown)
