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


def check_label_windows(
    cutoffs: list[pd.Timestamp], horizon_days: int, as_of: pd.Timestamp, first_order_at: pd.Timestamp
) -> None:
    """Refuse, before any feature is built, a schedule that leaves the model nothing to learn from: a test cutoff
    T (the last whose window is observed by as-of) and at least one earlier cutoff, after the first order, whose
    window ends by T."""
    if not _has_fitting_cutoff(cutoffs, horizon_days, as_of, first_order_at):
        longest = next(
            (h for h in range(horizon_days - 1, 0, -1) if _has_fitting_cutoff(cutoffs, h, as_of, first_order_at)),
            None,
        )
        allowed = (
            f"at most {longest} days with these cutoffs"
            if longest
            else "none with these cutoffs: move features.first_cutoff"
        )
        raise ValueError(
            f"features.horizon_days = {horizon_days} is longer than the history allows: the data runs from "
            f"{first_order_at.date()} to {as_of.date()}, and a model needs a test cutoff whose {horizon_days}-day "
            f"window is observed plus an earlier cutoff whose window ends by it; the horizon can be {allowed}"
        )


def _has_fitting_cutoff(
    cutoffs: list[pd.Timestamp], horizon_days: int, as_of: pd.Timestamp, first_order_at: pd.Timestamp
) -> bool:
    labelled = [cutoff for cutoff in cutoffs if label_observed(cutoff, horizon_days, as_of)]
    if not labelled:
        return False
    test_cutoff = labelled[-1]
    return any(first_order_at < cutoff and label_observed(cutoff, horizon_days, test_cutoff) for cutoff in labelled)
