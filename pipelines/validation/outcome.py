"""What later stages take from a validation: its export time, and only if it passed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def read_validation_report(path: Path) -> dict[str, Any]:
    """The report of a validation that passed: a later stage must not take the rows of a failed one as valid."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run `churn validate` (or `dvc repro validate`) first")
    report: dict[str, Any] = json.loads(path.read_text())
    if not report.get("passed", False):
        raise ValueError(
            f"the last validation did not pass (see {path.with_suffix('.md')}): fix the data or its reading "
            "settings, or raise validate.max_quarantine_share, and validate again"
        )
    return report


def validated_as_of(path: Path) -> pd.Timestamp:
    """The export time of the data that passed validation."""
    return pd.Timestamp(read_validation_report(path)["as_of"])
