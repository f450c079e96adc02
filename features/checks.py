"""Invariants every feature table must satisfy; a violation is a bug upstream, reported with what is wrong.

Checked on Arrow, as the engine returns the rows: at 1M customers a cutoff's rows converted to pandas just to be
checked cost about a second per cutoff."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from features.build import FEATURE_SPECS, KEY_COLUMNS, LABEL

# Small slack for float rounding of day differences.
DAY_TOLERANCE = 1e-6


def check_feature_invariants(table: pa.Table) -> None:
    """Raise ValueError naming the first broken invariant: one row per (customer, cutoff), recency within tenure
    and first-order age, no negative counts, labels 0/1/missing. A missing value breaks no invariant."""
    _check_unique_keys(table)
    recency = table["days_since_last_order"]
    for longer in ("days_since_first_order", "tenure_days"):
        broken = _count_true(pc.greater(recency, pc.add(table[longer], DAY_TOLERANCE)))
        if broken:
            raise ValueError(f"days_since_last_order exceeds {longer} on {broken} rows")
    for spec in FEATURE_SPECS:
        if spec.dtype == "int64" and spec.unit != "month" and not spec.name.endswith("_change"):
            negative = _count_true(pc.less(table[spec.name], 0))
            if negative:
                raise ValueError(f"{spec.name} is negative on {negative} rows")
    labels = set(pc.unique(table[LABEL].drop_null()).to_pylist())
    if not labels <= {0, 1}:
        raise ValueError(f"{LABEL} holds {sorted(labels)}; expected 0, 1 or missing")


def _check_unique_keys(table: pa.Table) -> None:
    counts = table.select(list(KEY_COLUMNS)).group_by(list(KEY_COLUMNS)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        extra_rows = pc.sum(pc.subtract(repeated["count_all"], 1)).as_py()
        example = [repeated[column][0].as_py() for column in KEY_COLUMNS]
        raise ValueError(f"{extra_rows} repeated (customer_id, cutoff) rows, e.g. {example}")


def _count_true(mask: pa.ChunkedArray) -> int:
    """Rows where `mask` is true (null: not true, as a comparison with a missing value)."""
    return int(pc.sum(mask).as_py() or 0)
