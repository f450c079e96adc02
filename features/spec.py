"""Feature specifications: the feature dictionary is generated from these, and the builders must produce exactly
these columns (a test checks both directions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Group = Literal["rfm", "satisfaction", "returns", "relationship", "trend"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    group: Group
    dtype: Literal["float64", "int64", "boolean", "string"]
    unit: str
    window: str
    definition: str
    # Contract "table" or "table.column" the feature needs; without it the feature is missing (null), not zero.
    needs: tuple[str, ...] = ("orders",)
