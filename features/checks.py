"""Invariants every feature table must satisfy; a violation is a bug upstream, reported with what is wrong."""

from __future__ import annotations

import pandas as pd

from features.build import FEATURE_SPECS, KEY_COLUMNS, LABEL

# Small slack for float rounding of day differences.
DAY_TOLERANCE = 1e-6


def check_feature_invariants(table: pd.DataFrame) -> None:
    """Raise ValueError naming the first broken invariant: one row per (customer, cutoff), recency within tenure
    and first-order age, no negative counts, labels 0/1/missing."""
    duplicated = table.duplicated(list(KEY_COLUMNS))
    if duplicated.any():
        example = table.loc[duplicated, list(KEY_COLUMNS)].iloc[0].tolist()
        raise ValueError(f"{int(duplicated.sum())} repeated (customer_id, cutoff) rows, e.g. {example}")
    recency = table["days_since_last_order"]
    for longer in ("days_since_first_order", "tenure_days"):
        broken = recency > table[longer] + DAY_TOLERANCE
        if broken.any():
            raise ValueError(f"days_since_last_order exceeds {longer} on {int(broken.sum())} rows")
    for spec in FEATURE_SPECS:
        if spec.dtype == "int64" and spec.unit != "month" and not spec.name.endswith("_change"):
            negative = table[spec.name] < 0
            if negative.any():
                raise ValueError(f"{spec.name} is negative on {int(negative.sum())} rows")
    labels = set(table[LABEL].dropna().unique())
    if not labels <= {0, 1}:
        raise ValueError(f"{LABEL} holds {sorted(labels)}; expected 0, 1 or missing")
