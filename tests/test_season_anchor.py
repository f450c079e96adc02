"""The season anchor: which months a short history holds in one year only, and the log-odds shift by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from models.season_anchor import anchored, logit_shift, thin_months


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
        {"params": {}, "fitting_cutoffs": ["2010-03-04"]},  # the default: never
        {"params": {"season_anchor": "never"}, "fitting_cutoffs": ["2010-03-04"]},
    ):
        unchanged = with_season_anchor(SimpleNamespace(training=training), methods)  # type: ignore[arg-type]
        assert unchanged.probability is methods["lightgbm"].probability
        assert not unchanged.fitted["season_anchor"]["applied"]
