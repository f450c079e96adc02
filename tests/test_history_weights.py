"""Row weights for a left-truncated export (train.short_history_weight_days): the history before each cutoff by
hand, point in time (later cutoffs never change an earlier row's weight), and the weights in the booster's fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.history_weights import history_days, short_history_weights
from models.train import TrainParams, row_weights


def table() -> pd.DataFrame:
    # Cutoffs 2020-03-01, 2020-09-01 and 2021-03-01 over a history that starts 2020-01-01 (the first customer's
    # first order). At 2021-03-01 the old customers have left the population: its rows alone would put the start at
    # 2020-06-01, the earlier cutoffs already knew 2020-01-01.
    return pd.DataFrame(
        {
            "cutoff": pd.to_datetime(["2020-03-01"] * 2 + ["2020-09-01"] * 2 + ["2021-03-01"] * 2),
            "days_since_first_order": [60.0, 10.0, 244.0, 30.0, 273.0, 5.0],
        }
    )


def test_history_before_each_cutoff_by_hand() -> None:
    frame = table()
    # 2020-03-01 - 60 days = 2020-01-01; 2020-09-01 - 244 days = 2020-01-01; 2021-03-01 - 273 days = 2020-06-01,
    # later than the start known before it, so the start stays 2020-01-01 (425 days before 2021-03-01).
    assert history_days(frame["cutoff"], frame["days_since_first_order"]).tolist() == [60, 60, 244, 244, 425, 425]
    weights = short_history_weights(frame, frame, 365)
    assert weights == pytest.approx([60 / 365, 60 / 365, 244 / 365, 244 / 365, 1.0, 1.0])
    # A subset of rows (the training rows) keeps its rows' weights, read from the whole frame.
    assert short_history_weights(frame.iloc[[1, 4]], frame, 100) == pytest.approx([0.6, 1.0])


def test_later_cutoffs_never_change_an_earlier_row_s_weight() -> None:
    frame = table()
    before = short_history_weights(frame.iloc[:4], frame, 365)
    # A later cutoff whose rows claim a much earlier first order (e.g. a backfilled customer) moves the start for
    # that cutoff on, never for the cutoffs before it.
    later = pd.DataFrame({"cutoff": pd.to_datetime(["2021-09-01"]), "days_since_first_order": [2000.0]})
    grown = pd.concat([frame, later], ignore_index=True)
    assert short_history_weights(grown.iloc[:4], grown, 365) == pytest.approx(before)
    assert short_history_weights(grown.iloc[[6]], grown, 365) == pytest.approx([1.0])
    # Rows of the same cutoff change it only through their own first orders, known at that cutoff.
    assert short_history_weights(frame.iloc[:2], frame.iloc[:2], 365) == pytest.approx(before[:2])


def test_refusals_are_one_line() -> None:
    frame = table()
    with pytest.raises(ValueError, match="short_history_weight_days must be a positive number of days"):
        short_history_weights(frame, frame, 0)
    with pytest.raises(ValueError, match="short_history_weight_days must be a positive number of days or null"):
        TrainParams.from_dict({"short_history_weight_days": -30})
    unknown = frame.assign(days_since_first_order=[np.nan, np.nan, 244.0, 30.0, 273.0, 5.0])
    with pytest.raises(ValueError, match="no row at cutoff 2020-03-01 has days_since_first_order"):
        short_history_weights(unknown, unknown, 365)


def test_row_weights_are_off_by_default_and_follow_the_param() -> None:
    frame = table()
    assert TrainParams().short_history_weight_days is None
    assert row_weights(frame, frame, TrainParams()) is None
    weighted = row_weights(frame.iloc[2:4], frame, replace(TrainParams(), short_history_weight_days=244))
    assert weighted == pytest.approx([1.0, 1.0])
