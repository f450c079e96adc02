"""The validation report: JSON for machines (and DVC metrics), Markdown for people."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.validation.run import ValidationResult, top_rules


def report_dict(result: ValidationResult, max_quarantine_share: float) -> dict[str, object]:
    present = [report for report in result.reports if report.present]
    return {
        "as_of": result.as_of.isoformat(),
        "max_quarantine_share": max_quarantine_share,
        "passed": not result.over_threshold(max_quarantine_share),
        "rows_in": sum(report.rows_in for report in present),
        "accepted": sum(report.accepted for report in present),
        "quarantined": sum(report.quarantined for report in present),
        "tables": {report.table: report.to_dict() for report in result.reports},
    }


def report_markdown(result: ValidationResult, max_quarantine_share: float) -> str:
    lines = [
        "# Validation report",
        "",
        f"Data as of {result.as_of.isoformat()}; a table fails when more than "
        f"{max_quarantine_share:.1%} of its rows are quarantined.",
        "",
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
    notes = [
        f"- {report.table}: optional columns absent in the source: {', '.join(report.missing_optional_columns)}"
        for report in result.reports
        if report.missing_optional_columns
    ] + [
        f"- {report.table}: source columns not in the contract, ignored: {', '.join(report.ignored_columns)}"
        for report in result.reports
        if report.ignored_columns
    ]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Rules broken", ""]
    for report in result.reports:
        for rule, count in report.rule_counts.items():
            lines.append(f"- `{rule}`: {count:,} rows")
    return "\n".join(lines) + "\n"


def write_reports(result: ValidationResult, max_quarantine_share: float, json_path: Path, markdown_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report_dict(result, max_quarantine_share), indent=2) + "\n")
    markdown_path.write_text(report_markdown(result, max_quarantine_share))
