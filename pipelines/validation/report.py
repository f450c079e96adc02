"""The validation report: JSON for machines (and DVC metrics), Markdown for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.sources.read import SET_ASIDE_PARQUET
from pipelines.validation.run import ValidationResult, top_rules


def report_dict(
    result: ValidationResult, source_accounting: dict[str, Any], max_quarantine_share: float
) -> dict[str, object]:
    present = [report for report in result.reports if report.present]
    return {
        **({"source": source_accounting} if source_accounting else {}),
        "as_of": result.as_of.isoformat(),
        "max_quarantine_share": max_quarantine_share,
        "passed": not result.over_threshold(max_quarantine_share),
        "rows_in": sum(report.rows_in for report in present),
        "accepted": sum(report.accepted for report in present),
        "quarantined": sum(report.quarantined for report in present),
        "tables": {report.table: report.to_dict() for report in result.reports},
    }


def report_markdown(result: ValidationResult, source_accounting: dict[str, Any], max_quarantine_share: float) -> str:
    lines = [
        "# Validation report",
        "",
        f"Data as of {result.as_of.isoformat()}; a table fails when more than "
        f"{max_quarantine_share:.1%} of its rows are quarantined.",
        "",
        *source_markdown(source_accounting),
        "| table | rows in | accepted | quarantined | share | most broken rules |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for report in result.reports:
        if not report.present:
            lines.append(f"| {report.table} | absent | | | | features from it will be missing |")
            continue
        flag = " **over limit**" if report.quarantined_share > max_quarantine_share else ""
        lines.append(
            f"| {report.table} | {report.rows_in:,} | {report.accepted:,} | {report.quarantined:,} | "
            f"{report.quarantined_share:.2%}{flag} | {top_rules(report) or '-'} |"
        )
    notes = (
        [
            f"- {report.table}: optional columns absent in the source: {', '.join(report.missing_optional_columns)}"
            for report in result.reports
            if report.missing_optional_columns
        ]
        + [
            f"- {report.table}: source columns not in the contract, ignored: {', '.join(report.ignored_columns)}"
            for report in result.reports
            if report.ignored_columns
        ]
        + [
            f"- {report.table}: {', '.join(report.date_only_columns)} hold days without a time of day: each counts "
            "from the end of its day (capped at as-of), and time-order rules compare days"
            for report in result.reports
            if report.date_only_columns
        ]
        + [
            f"- `{rule}`: {count:,} ids Excel had written as numbers ('42.0') read as the id ('42')"
            for report in result.reports
            for rule, count in report.rewrites.items()
        ]
        + [f"- `{rule}`: {hint}" for report in result.reports for rule, hint in report.hints.items()]
        + [f"- warning: {warning}" for report in result.reports for warning in report.warnings]
    )
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Rules broken", ""]
    for report in result.reports:
        for rule, count in report.rule_counts.items():
            lines.append(f"- `{rule}`: {count:,} rows")
    return "\n".join(lines) + "\n"


def source_markdown(accounting: dict[str, Any]) -> list[str]:
    """What an adapter made of the source's own rows, before validation; nothing for a plain folder of tables."""
    if not accounting:
        return []
    unit = accounting["unit"]
    return [
        f"## Source: {accounting['source']}",
        "",
        f"{accounting['rows_in']:,} {unit} in, {accounting['rows_used']:,} used, "
        f"{accounting['rows_set_aside']:,} set aside (in the quarantine folder's {SET_ASIDE_PARQUET}, with the "
        "reasons). A row can have several reasons:",
        "",
        *(f"- `{rule}`: {count:,}" for rule, count in accounting["set_aside_by_rule"].items()),
        "",
        "Tables made from them: " + ", ".join(f"{name} {rows:,} rows" for name, rows in accounting["tables"].items()),
        "",
        "## Contract tables",
        "",
    ]


def write_reports(
    result: ValidationResult,
    source_accounting: dict[str, Any],
    max_quarantine_share: float,
    json_path: Path,
    markdown_path: Path,
) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report_dict(result, source_accounting, max_quarantine_share), indent=2) + "\n")
    markdown_path.write_text(report_markdown(result, source_accounting, max_quarantine_share))
