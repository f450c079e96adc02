"""Calibration that survives the season on a short history.

A model's calibration is learned on its fitting cutoffs. When those hold fewer than two years of some calendar
month, the model has seen that season in one year only (and, early in a history, on a population cut short by it):
its mean prediction at a cutoff in that season can be far from the churn rate there (UCI Online Retail: 0.58
predicted against 0.52 observed in the autumn before Christmas). A buy-till-you-die model fitted on the cutoff's own
history uses no labels, so no season of the past misleads it about this one's population: its mean probability of
no purchase in the horizon is the anchor. The model's probabilities are shifted by one constant in log-odds so that
their mean is the anchor's: the ranking (ROC-AUC) is unchanged, only the level moves.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import expit, logit

# Each calendar month must occur in at least this many years among the fitting cutoffs, else the level is anchored.
MIN_YEARS_PER_MONTH = 2
_EPSILON = 1e-6


def thin_months(fitting_cutoffs: Iterable[str | pd.Timestamp]) -> list[int]:
    """The calendar months (1-12) that occur in fewer than MIN_YEARS_PER_MONTH years among the fitting cutoffs."""
    cutoffs = pd.DatetimeIndex([pd.Timestamp(cutoff) for cutoff in fitting_cutoffs])
    years = pd.Series(cutoffs.year, index=cutoffs.month).groupby(level=0).nunique()
    return [month for month in range(1, 13) if years.get(month, 0) < MIN_YEARS_PER_MONTH]


def logit_shift(probability: np.ndarray, target_rate: float) -> float:
    """The constant that, added to the log-odds of `probability`, makes their mean `target_rate` (bisection:
    deterministic to the last digit)."""
    if not 0.0 < target_rate < 1.0:
        raise ValueError(f"the anchor's churn rate must be between 0 and 1, not {target_rate}")
    odds = logit(np.clip(np.asarray(probability, dtype=np.float64), _EPSILON, 1.0 - _EPSILON))
    low, high = -20.0, 20.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if expit(odds + middle).mean() < target_rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def anchored(probability: np.ndarray, shift: float) -> np.ndarray:
    """`probability` with `shift` added to its log-odds."""
    odds = logit(np.clip(np.asarray(probability, dtype=np.float64), _EPSILON, 1.0 - _EPSILON))
    return np.asarray(expit(odds + shift), dtype=np.float64)
