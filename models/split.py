"""Out-of-time splits that simulate deploying the model at a given time.

A model deployed at time D can only have been fitted on labels observable at D: rows whose label window
[cutoff, cutoff + horizon) ends at or before D. Early stopping and calibration use customers held out from training,
so they cannot reward memorising a customer seen at a neighbouring cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import LABEL


@dataclass(frozen=True)
class Split:
    """Row positions into the frame that was split."""

    deploy_at: pd.Timestamp
    horizon_days: int
    train: np.ndarray
    validation: np.ndarray

    @property
    def fitting(self) -> np.ndarray:
        return np.sort(np.concatenate([self.train, self.validation]))


def last_labelled_cutoff(frame: pd.DataFrame) -> pd.Timestamp:
    """The last cutoff with labels: the out-of-time test cutoff T."""
    with_labels = frame.loc[frame[LABEL].notna(), "cutoff"]
    if with_labels.empty:
        raise ValueError("no cutoff has a fully observed label window: the data's history is shorter than the horizon")
    return pd.Timestamp(with_labels.max())


def chosen_test_cutoff(frame: pd.DataFrame, wanted: str | None) -> pd.Timestamp:
    """The test cutoff: `wanted` (train.test_cutoff), which must be a labelled cutoff of the frame, or by default
    the last labelled one."""
    if wanted is None:
        return last_labelled_cutoff(frame)
    try:
        cutoff = pd.Timestamp(wanted)
    except ValueError:
        raise ValueError(f"train.test_cutoff {wanted!r} is not a date (YYYY-MM-DD)") from None
    labelled_cutoffs = pd.DatetimeIndex(frame.loc[frame[LABEL].notna(), "cutoff"].unique()).sort_values()
    if cutoff not in labelled_cutoffs:
        if labelled_cutoffs.empty:
            raise ValueError("no cutoff has a fully observed label window: no test cutoff can be chosen")
        nearest = labelled_cutoffs[abs(labelled_cutoffs - cutoff).argmin()]
        raise ValueError(
            f"train.test_cutoff {cutoff.date()} is not a labelled cutoff of the feature table (the cutoffs run every "
            f"features.every_days from features.first_cutoff); the nearest is {nearest.date()}"
        )
    return cutoff


def label_known_by(cutoffs: pd.Series, horizon_days: int, deploy_at: pd.Timestamp) -> pd.Series:
    """Whether each row's label window [cutoff, cutoff + horizon) has ended by deploy_at."""
    return cutoffs + pd.Timedelta(days=horizon_days) <= deploy_at


def held_out_customers(customer_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """A stable pseudo-random share of customers, the same for a customer at every cutoff and in every run."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"train.validation_share must be between 0 and 1, not {share}")
    hashes = pd.util.hash_array(customer_ids.astype(str).to_numpy(dtype=object), hash_key=f"{seed:016d}")
    return (hashes % 10_000) < share * 10_000


def split_for_deployment(
    frame: pd.DataFrame, deploy_at: pd.Timestamp, horizon_days: int, validation_share: float, seed: int
) -> Split:
    """Fitting rows are labelled rows whose label was known at deploy_at; validation takes whole customers."""
    fitting = frame[LABEL].notna() & label_known_by(frame["cutoff"], horizon_days, deploy_at)
    if not fitting.any():
        raise ValueError(
            f"no labelled cutoff has a label window ending by {deploy_at.date()}: "
            f"the history before it is shorter than the {horizon_days}-day horizon"
        )
    held_out = held_out_customers(frame["customer_id"], validation_share, seed)
    split = Split(
        deploy_at=deploy_at,
        horizon_days=horizon_days,
        train=np.flatnonzero(fitting.to_numpy() & ~held_out),
        validation=np.flatnonzero(fitting.to_numpy() & held_out),
    )
    check_split(frame, split)
    return split


def check_split(frame: pd.DataFrame, split: Split) -> None:
    """The guard: no fitting label window passes the deployment time, no validation customer is in training."""
    for name, rows in (("training", split.train), ("validation", split.validation)):
        if len(rows) == 0:
            raise ValueError(f"the {name} set is empty; check train.validation_share and the cutoff schedule")
        cutoffs = frame["cutoff"].iloc[rows]
        late = ~label_known_by(cutoffs, split.horizon_days, split.deploy_at)
        if late.any():
            raise ValueError(
                f"{name} row at cutoff {cutoffs[late].iloc[0].date()} has a label window ending after the "
                f"deployment time {split.deploy_at.date()}: its label was not observable then"
            )
        if frame[LABEL].iloc[rows].isna().any():
            raise ValueError(f"the {name} set holds rows without a label")
    shared = set(frame["customer_id"].iloc[split.train]) & set(frame["customer_id"].iloc[split.validation])
    if shared:
        raise ValueError(f"{len(shared)} validation customers are also in training, e.g. {sorted(shared)[0]}")
