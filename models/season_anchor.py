"""Calibration that survives the season on a short history.

A model's calibration is learned on its fitting cutoffs. When those hold fewer than two years of some calendar
month, the model has seen that season in one year only (and, early in a history, on a population cut short by it):
its mean prediction at a cutoff in that season can be far from the churn rate there (UCI Online Retail: 0.58
predicted against 0.52 observed in the autumn before Christmas). Two rules move the level by one constant in
log-odds, so the ranking (ROC-AUC) is unchanged (train.season_anchor):

- `last_year` asks the recipe itself, on labels known at deployment. The season cutoffs are the fitting cutoffs
  within SEASON_WINDOW_DAYS of a year before deployment. A second model is fitted by the same recipe without every
  fitting cutoff whose label window overlaps theirs, so it has not seen that season's labels; the shift that moves
  its mean prediction there to the churn rate observed there is its miss on a season it had to infer from the
  others, and the deployed model's probabilities are moved by it (models/train.py keeps it in the calibration).
  Only where the cutoffs left for the second fit lie on both sides of the season: from one side it extrapolates,
  and at the start of a history that miss is about the short history, not the season.
- `auto` (evaluate only): a buy-till-you-die model fitted on the test cutoff's own history uses no labels, and its
  mean probability of no purchase in the horizon is the anchor. It knows no season either (Online Retail in
  spring: 0.54 against 0.63 observed).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import expit, logit

# Each calendar month must occur in at least this many years among the fitting cutoffs, else the level is anchored.
MIN_YEARS_PER_MONTH = 2
# The season a year before a deployment: fitting cutoffs within this many days of the date 365 days before it.
SEASON_WINDOW_DAYS = 14
YEAR_DAYS = 365
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


def season_cutoffs(fitting_cutoffs: Iterable[pd.Timestamp], deploy_at: pd.Timestamp) -> list[pd.Timestamp]:
    """The fitting cutoffs within SEASON_WINDOW_DAYS of YEAR_DAYS before `deploy_at`, in order."""
    year_before = deploy_at - pd.Timedelta(days=YEAR_DAYS)
    window = pd.Timedelta(days=SEASON_WINDOW_DAYS)
    return sorted({pd.Timestamp(c) for c in fitting_cutoffs if abs(pd.Timestamp(c) - year_before) <= window})


def outside_season(cutoffs: pd.Series, season: list[pd.Timestamp], horizon_days: int) -> pd.Series:
    """Whether each row's label window [cutoff, cutoff + horizon) misses every season cutoff's window: the rows a
    model may be fitted on and still not have seen the season's labels."""
    if not season:
        return pd.Series(True, index=cutoffs.index)
    horizon = pd.Timedelta(days=horizon_days)
    return (cutoffs + horizon <= season[0]) | (cutoffs >= season[-1] + horizon)


def season_to_learn(
    fitting_cutoffs: Iterable[pd.Timestamp], deploy_at: pd.Timestamp, horizon_days: int
) -> tuple[list[pd.Timestamp], str]:
    """The season cutoffs `last_year` learns the level from, or none and why. Only where the deployment's month
    occurs in fewer than MIN_YEARS_PER_MONTH years of fitting cutoffs, a fitting cutoff lies near a year before, and
    the fitting cutoffs left for the second model lie on both sides of the season: between them it interpolates the
    season's level; from one side it would extrapolate, as it must at the start of a history, where the population
    is cut short by the start of the data (UCI Online Retail in March 2010: three months of history) and its miss
    says nothing about the season."""
    cutoffs = pd.Series(sorted({pd.Timestamp(cutoff) for cutoff in fitting_cutoffs}), dtype="datetime64[ns]")
    if deploy_at.month not in thin_months(cutoffs):
        return [], f"month {deploy_at.month} occurs in {MIN_YEARS_PER_MONTH} or more years of fitting cutoffs"
    season = season_cutoffs(cutoffs, deploy_at)
    if not season:
        return [], f"no fitting cutoff within {SEASON_WINDOW_DAYS} days of {YEAR_DAYS} days before"
    left = cutoffs[outside_season(cutoffs, season, horizon_days)]
    if not ((left < season[0]).any() and (left > season[-1]).any()):
        return [], "the fitting cutoffs outside the season's label windows lie on one side of it only"
    return season, ""
