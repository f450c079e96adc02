"""When features are taken: a schedule of cutoffs, and which of them have a fully observed label window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.blocks import from_block


@dataclass(frozen=True)
class FeatureParams:
    """The `features` block of params.yaml."""

    first_cutoff: str = "2023-07-01"
    every_days: int = 30
    horizon_days: int = 90
    active_window_days: int = 365
    # A complaint resolved within this many days counts as service recovery.
    recovery_days: float = 2.0
    # Reviews scoring this or lower count as a bad experience.
    low_review_max: int = 2

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureParams:
        params = from_block(cls, values, "features")
        if params.every_days <= 0 or params.horizon_days <= 0 or params.active_window_days <= 0:
            raise ValueError("features.every_days, horizon_days and active_window_days must be positive")
        return params


def cutoff_schedule(first: pd.Timestamp, every_days: int, as_of: pd.Timestamp) -> list[pd.Timestamp]:
    """first, first + every, ... up to and including as_of (the last ones have no label yet, but can be scored)."""
    if first > as_of:
        raise ValueError(f"features.first_cutoff {first.date()} is after the data's as-of time {as_of.date()}")
    return list(pd.date_range(first, as_of, freq=pd.Timedelta(days=every_days)))


def label_observed(cutoff: pd.Timestamp, horizon_days: int, as_of: pd.Timestamp) -> bool:
    """The label window [cutoff, cutoff + horizon) ends no later than the data's as-of time."""
    return cutoff + pd.Timedelta(days=horizon_days) <= as_of
