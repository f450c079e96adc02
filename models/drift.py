"""Feature drift between the training rows and a scoring population: population stability index (PSI) per feature.

The training distribution is summarised once, at training time, and saved with the model: decile bins for numeric
features, level shares for categorical ones, and the missing share as a bin of its own in both.

A feature missing for every row of a training cutoff could not be known at that cutoff (the year-ago window of a
cutoff less than a year into the data); those cutoffs are left out of that feature's profile. Otherwise every
population scored once the history is long enough would show the early cutoffs' missing share as drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 10
# A scoring population has a single cutoff month by construction; its "drift" from the training months is no news.
NOT_PROFILED = frozenset({"cutoff_month"})
# Keeps log(0) out of PSI when a bin is empty on one side.
_FLOOR = 1e-4


def feature_profile(matrix: pd.DataFrame, cutoffs: pd.Series) -> dict[str, dict[str, Any]]:
    """Per model feature: bin edges (numeric) or levels (categorical) and the training shares, missing last, over
    the cutoffs (one per row of `matrix`) at which the feature was known for some row."""
    profile = {}
    for name in matrix.columns.difference(sorted(NOT_PROFILED), sort=False):
        values = known_at_cutoff(matrix[name], cutoffs)
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = [str(level) for level in values.cat.categories]
            profile[name] = {"levels": levels, "shares": _shares(_categorical_bins(values, levels), len(levels) + 1)}
        else:
            edges = _decile_edges(values.to_numpy(dtype=np.float64))
            profile[name] = {"edges": edges, "shares": _shares(_numeric_bins(values, edges), len(edges) + 2)}
    return profile


def known_at_cutoff(values: pd.Series, cutoffs: pd.Series) -> pd.Series:
    """`values` without the rows of cutoffs where every value is missing; all of them for a feature never known
    (then missing is what training saw)."""
    if len(values) != len(cutoffs):
        raise ValueError(f"{len(values)} feature values but {len(cutoffs)} cutoffs")
    codes, uniques = pd.factorize(cutoffs.to_numpy())
    known_rows = np.bincount(codes, weights=values.notna().to_numpy(), minlength=len(uniques))
    if not known_rows.any():
        return values
    return values[known_rows[codes] > 0]


def population_stability(profile: dict[str, dict[str, Any]], matrix: pd.DataFrame) -> dict[str, float]:
    """PSI of each profiled feature: sum over bins of (scoring - training) * ln(scoring / training)."""
    result = {}
    for name, summary in profile.items():
        values = matrix[name]
        if "levels" in summary:
            shares = _shares(_categorical_bins(values, summary["levels"]), len(summary["levels"]) + 1)
        else:
            shares = _shares(_numeric_bins(values, summary["edges"]), len(summary["edges"]) + 2)
        expected = np.maximum(np.asarray(summary["shares"]), _FLOOR)
        actual = np.maximum(np.asarray(shares), _FLOOR)
        result[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
    return result


def _decile_edges(values: np.ndarray) -> list[float]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    return [float(edge) for edge in np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))]


def _numeric_bins(values: pd.Series, edges: list[float]) -> np.ndarray:
    """Bin i holds values in (edges[i-1], edges[i]]; the last bin index holds missing values."""
    array = values.to_numpy(dtype=np.float64)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="left")
    return np.where(np.isnan(array), len(edges) + 1, bins)


def _categorical_bins(values: pd.Series, levels: list[str]) -> np.ndarray:
    """One bin per training level, then missing (the model input has already made unseen levels missing)."""
    codes = pd.Categorical(values.astype("string"), categories=levels).codes.astype(np.int64)
    return np.where(codes == -1, len(levels), codes)


def _shares(bins: np.ndarray, size: int) -> list[float]:
    counts = np.bincount(bins.astype(np.int64), minlength=size)[:size]
    return [float(share) for share in counts / max(len(bins), 1)]
