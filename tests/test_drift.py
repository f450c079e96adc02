"""The training profile and PSI (models/drift.py): what counts as drift between training rows and a scoring
population."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.drift import feature_profile, population_stability

PSI_WARNING = 0.2


def training_rows(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Twelve monthly cutoffs of 1,000 customers; `year_ago` is unknown (missing for everyone) at the first four,
    as a year-ago window is before the data starts, and missing for a tenth of the customers afterwards."""
    rng = np.random.default_rng(seed)
    cutoffs = pd.Series(np.repeat(pd.date_range("2024-01-01", periods=12, freq="MS"), 1_000))
    year_ago = rng.poisson(2.0, len(cutoffs)).astype(np.float64)
    year_ago[rng.random(len(cutoffs)) < 0.1] = np.nan
    year_ago[cutoffs < pd.Timestamp("2024-05-01")] = np.nan
    recency = rng.exponential(30.0, len(cutoffs))
    return pd.DataFrame({"year_ago": year_ago, "recency": recency}), cutoffs


def scoring_population(seed: int = 1, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    year_ago = rng.poisson(2.0 + shift, 5_000).astype(np.float64)
    year_ago[rng.random(5_000) < 0.1] = np.nan
    return pd.DataFrame({"year_ago": year_ago, "recency": rng.exponential(30.0, 5_000)})


def test_a_feature_unknown_at_early_cutoffs_is_not_drift_once_known() -> None:
    matrix, cutoffs = training_rows()
    profile = feature_profile(matrix, cutoffs)
    psi = population_stability(profile, scoring_population())
    assert psi["year_ago"] < 0.05, psi
    # The missing share is the customers' own tenth, not the early cutoffs' third of all rows.
    assert abs(profile["year_ago"]["shares"][-1] - 0.1) < 0.02
    # Profiled over every row instead, the early cutoffs' missing values alone would raise the warning.
    everywhere = feature_profile(matrix, pd.Series(np.zeros(len(cutoffs))))
    assert population_stability(everywhere, scoring_population())["year_ago"] > PSI_WARNING


def test_a_real_shift_still_warns() -> None:
    matrix, cutoffs = training_rows()
    psi = population_stability(feature_profile(matrix, cutoffs), scoring_population(shift=3.0))
    assert psi["year_ago"] > PSI_WARNING
    assert psi["recency"] < 0.05


def test_a_feature_missing_for_everyone_at_scoring_warns() -> None:
    matrix, cutoffs = training_rows()
    population = scoring_population().assign(year_ago=np.nan)
    assert population_stability(feature_profile(matrix, cutoffs), population)["year_ago"] > PSI_WARNING


def test_a_feature_never_known_in_training_is_profiled_as_missing() -> None:
    matrix, cutoffs = training_rows()
    matrix["year_ago"] = np.nan
    profile = feature_profile(matrix, cutoffs)
    assert profile["year_ago"]["shares"][-1] == 1.0
    assert population_stability(profile, scoring_population().assign(year_ago=np.nan))["year_ago"] == 0.0
