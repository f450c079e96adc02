"""The season anchor: which months a short history holds in one year only, the log-odds shift by hand, the season
cutoffs a year before a deployment and the rows a model may see without their labels, and the shift kept in the
calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from models.calibration import Calibration
from models.season_anchor import (
    anchored,
    logit_shift,
    outside_season,
    season_cutoffs,
    season_to_learn,
    thin_months,
)


def test_thin_months_by_hand() -> None:
    # March 2010 to May 2011: March, April and May occur in two years, the other months in one.
    cutoffs = pd.date_range("2010-03-04", "2011-05-27", freq="7D")
    assert thin_months(cutoffs) == [1, 2, 6, 7, 8, 9, 10, 11, 12]
    # Two full years: no thin month.
    assert thin_months(pd.date_range("2023-07-01", "2025-06-30", freq="30D")) == []
    assert thin_months([]) == list(range(1, 13))


def test_logit_shift_moves_the_mean_to_the_target_and_keeps_the_order() -> None:
    probability = np.array([0.2, 0.5, 0.8, 0.9])
    shift = logit_shift(probability, 0.5)
    moved = anchored(probability, shift)
    assert moved.mean() == pytest.approx(0.5, abs=1e-9)
    assert (np.argsort(moved) == np.argsort(probability)).all()
    # By hand: one probability of 0.6 moved to 0.5 is a shift of -logit(0.6).
    assert logit_shift(np.array([0.6]), 0.5) == pytest.approx(-logit(0.6), abs=1e-9)
    assert anchored(np.array([0.6]), -logit(0.6))[0] == pytest.approx(expit(0.0))


def test_an_impossible_target_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        logit_shift(np.array([0.3]), 1.0)


def test_evaluate_anchors_the_model_only_on_a_short_history() -> None:
    from types import SimpleNamespace

    from models.baselines import Scores
    from pipelines.stages.evaluate import with_season_anchor

    raw = np.array([-1.0, 0.0, 1.0, 2.0])
    methods = {
        "lightgbm": Scores(ranking=raw, probability=np.array([0.3, 0.5, 0.7, 0.9])),
        "pareto_nbd": Scores(ranking=raw, probability=np.array([0.4, 0.5, 0.5, 0.6])),
    }
    short = SimpleNamespace(
        training={"params": {"season_anchor": "auto"}, "fitting_cutoffs": ["2010-03-04", "2010-09-02", "2011-03-03"]}
    )
    scores = with_season_anchor(short, methods)  # type: ignore[arg-type]
    assert scores.probability is not None and scores.probability.mean() == pytest.approx(0.5, abs=1e-9)
    assert scores.ranking is raw
    assert scores.fitted["season_anchor"]["applied"] and scores.fitted["season_anchor"]["anchor"] == "pareto_nbd"
    two_years = [c.date().isoformat() for c in pd.date_range("2023-07-01", "2025-06-30", freq="30D")]
    for training in (
        {"params": {"season_anchor": "auto"}, "fitting_cutoffs": two_years},
        {"params": {}, "fitting_cutoffs": ["2010-03-04"]},  # a model saved before the setting existed
        {"params": {"season_anchor": "never"}, "fitting_cutoffs": ["2010-03-04"]},
    ):
        unchanged = with_season_anchor(SimpleNamespace(training=training), methods)  # type: ignore[arg-type]
        assert unchanged.probability is methods["lightgbm"].probability
        assert not unchanged.fitted["season_anchor"]["applied"]


def test_season_cutoffs_are_the_fitting_cutoffs_near_a_year_before() -> None:
    # Deployed 2011-08-25: a year before is 2010-08-25; within 14 days: 08-12 (13 days), 08-19, 08-26, 09-02 (8);
    # 08-05 (20) and 09-09 (15) are not.
    cutoffs = pd.date_range("2010-03-04", "2011-05-26", freq="7D")
    assert season_cutoffs(cutoffs, pd.Timestamp("2011-08-25")) == [
        pd.Timestamp(day) for day in ("2010-08-12", "2010-08-19", "2010-08-26", "2010-09-02")
    ]
    # A year before 2011-02-10 is 22 days before the first cutoff: no season to learn from; 2011-02-24's is 8 days.
    assert season_cutoffs(cutoffs, pd.Timestamp("2011-02-10")) == []
    assert season_cutoffs(cutoffs, pd.Timestamp("2011-02-24")) == [pd.Timestamp("2010-03-04")]


def test_the_level_is_learned_only_for_a_thin_month_with_a_season_a_year_before_between_other_cutoffs() -> None:
    one_year = pd.date_range("2010-03-04", "2011-05-26", freq="7D")
    season, reason = season_to_learn(one_year, pd.Timestamp("2011-08-25"), 90)
    assert len(season) == 4 and reason == ""
    # May occurs in 2010 and 2011 among these cutoffs: the model has seen the month twice.
    assert season_to_learn(one_year, pd.Timestamp("2011-05-26"), 90) == (
        [],
        "month 5 occurs in 2 or more years of fitting cutoffs",
    )
    assert season_to_learn(one_year, pd.Timestamp("2011-02-10"), 90)[1].startswith("no fitting cutoff within 14 days")
    # Deployed 2011-02-24 on cutoffs up to 2010-11-25: the season is the first cutoff, 2010-03-04; every cutoff
    # whose window misses its window comes after it.
    before = pd.date_range("2010-03-04", "2010-11-25", freq="7D")
    assert season_to_learn(before, pd.Timestamp("2011-02-24"), 90) == (
        [],
        "the fitting cutoffs outside the season's label windows lie on one side of it only",
    )


def test_outside_season_keeps_only_label_windows_that_miss_the_season() -> None:
    # Season cutoffs 2010-08-12 and 2010-09-02, horizon 90 days: a window [c, c + 90) misses both when it ends by
    # 08-12 (c <= 05-14) or starts at 09-02 + 90 days = 12-01 or later.
    season = [pd.Timestamp("2010-08-12"), pd.Timestamp("2010-09-02")]
    cutoffs = pd.Series(pd.to_datetime(["2010-05-14", "2010-05-15", "2010-08-19", "2010-11-30", "2010-12-01"]))
    assert outside_season(cutoffs, season, 90).tolist() == [True, False, False, False, True]
    assert outside_season(cutoffs, [], 90).all()


def test_a_calibration_shift_moves_the_level_keeps_the_order_and_round_trips() -> None:
    raw = np.array([0.1, 0.4, 0.6, 0.9])
    sigmoid = Calibration("sigmoid", a=1.0, b=0.0)
    shifted = Calibration("sigmoid", a=1.0, b=0.0, shift=-0.5)
    assert shifted.apply(raw) == pytest.approx(expit(logit(raw) - 0.5), rel=1e-12)
    assert (np.argsort(shifted.apply(raw)) == np.argsort(raw)).all()
    isotonic = Calibration("isotonic", x=(0.0, 1.0), y=(0.2, 0.8), shift=0.3)
    assert isotonic.apply(np.array([0.5]))[0] == pytest.approx(expit(0.3))
    for calibration in (shifted, isotonic):
        assert Calibration.from_dict(calibration.to_dict()) == calibration
    # Without a shift the saved form is the one older models have.
    assert sigmoid.to_dict() == {"method": "sigmoid", "a": 1.0, "b": 0.0}
    assert Calibration.from_dict(sigmoid.to_dict()).apply(raw) == pytest.approx(raw)


def test_evaluate_reports_the_level_training_found_with_last_year() -> None:
    from types import SimpleNamespace

    from models.baselines import Scores
    from pipelines.stages.evaluate import with_season_anchor

    probability = np.array([0.3, 0.5, 0.7])
    methods = {"lightgbm": Scores(ranking=probability, probability=probability)}
    level = {"setting": "last_year", "applied": True, "logit_shift": -0.4}
    model = SimpleNamespace(training={"params": {"season_anchor": "last_year"}, "fitting_cutoffs": ["2010-03-04"],
                                      "season_level": level})  # fmt: skip
    scores = with_season_anchor(model, methods)  # type: ignore[arg-type]
    assert scores.probability is probability and scores.fitted["season_anchor"] == level
