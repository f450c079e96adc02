"""Paired bootstrap intervals of ROC-AUC: the weighted AUC is sklearn's, and the intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models import bootstrap
from models.bootstrap import RankedScores, bootstrap_roc_auc, resampled_aucs, weighted_auc

RNG = np.random.default_rng(7)
LABELS = RNG.integers(0, 2, 400)
# Rounded so that many scores tie, within and across the classes.
SCORES = np.round(LABELS * 0.3 + RNG.normal(0, 0.5, 400), 1)


def test_weighted_auc_is_sklearns_with_and_without_weights() -> None:
    ranked = RankedScores.of(SCORES)
    ones = np.ones(len(LABELS))
    assert weighted_auc(ranked, ones * LABELS, ones * (1 - LABELS)) == pytest.approx(roc_auc_score(LABELS, SCORES))
    counts = RNG.integers(0, 4, len(LABELS)).astype(float)
    expected = roc_auc_score(LABELS, SCORES, sample_weight=counts)
    assert weighted_auc(ranked, counts * LABELS, counts * (1 - LABELS)) == pytest.approx(expected)


def test_intervals_cover_the_estimate_and_are_paired() -> None:
    noisy = SCORES + RNG.normal(0, 1.0, len(SCORES))
    result = bootstrap_roc_auc(LABELS, {"model": SCORES, "same": SCORES.copy(), "noisy": noisy}, "model", 300, 0)
    low, high = result["roc_auc"]["model"]
    assert low < roc_auc_score(LABELS, SCORES) < high
    assert high - low < 0.2
    # The same scores on the same resampled customers: no difference at all, in every resample.
    assert result["gain_over"]["same"] == [0.0, 0.0]
    gain_low, gain_high = result["gain_over"]["noisy"]
    assert gain_low < roc_auc_score(LABELS, SCORES) - roc_auc_score(LABELS, noisy) < gain_high
    assert result == bootstrap_roc_auc(LABELS, {"model": SCORES, "same": SCORES, "noisy": noisy}, "model", 300, 0)


def test_a_perfect_ranking_has_a_degenerate_interval() -> None:
    result = bootstrap_roc_auc(LABELS, {"model": LABELS.astype(float)}, "model", 50, 1)
    assert result["roc_auc"]["model"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="reference method 'other'"):
        bootstrap_roc_auc(LABELS, {"model": SCORES}, "other", 10, 1)


def _reference_bootstrap(labels: np.ndarray, scores: dict[str, np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """The resampled AUCs as the float weighted sum over tie groups gives them (the first implementation)."""
    ranked = [RankedScores.of(np.asarray(values, dtype=np.float64)) for values in scores.values()]
    is_positive = labels.astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(ranked)))
    for draw in range(resamples):
        counts = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels)).astype(np.float64)
        draws[draw] = [weighted_auc(method, counts * is_positive, counts * (1 - is_positive)) for method in ranked]
    return draws


@pytest.mark.parametrize("size", [1, 2, 57, 400, 5000])
def test_the_integer_resamples_give_the_float_sums_bit_for_bit(size: int) -> None:
    rng = np.random.default_rng(size)
    labels = rng.integers(0, 2, size)
    scores = {
        "distinct": labels + rng.normal(0, 1, size),
        "ties": np.round(labels * 0.3 + rng.normal(0, 0.5, size), 1),
        "few_values": rng.integers(0, 3, size).astype(float),
        "constant": np.zeros(size),
    }
    np.testing.assert_array_equal(resampled_aucs(labels, scores, 40, 3), _reference_bootstrap(labels, scores, 40, 3))


def test_the_share_of_the_gap_closed_is_paired_and_brackets_the_estimate() -> None:
    baseline = SCORES + RNG.normal(0, 2.0, len(SCORES))
    model = SCORES + RNG.normal(0, 1.0, len(SCORES))
    scores = {"model": model, "baseline": baseline, "ceiling": SCORES, "ceiling_twin": SCORES.copy()}
    result = bootstrap_roc_auc(LABELS, scores, "model", 300, 0, gap_from="baseline", ceilings=("ceiling", "absent"))
    auc = {name: roc_auc_score(LABELS, values) for name, values in scores.items()}
    low, high = result["gap_closed"]["ceiling"]
    assert low < (auc["model"] - auc["baseline"]) / (auc["ceiling"] - auc["baseline"]) < high
    assert result["gap_from"] == "baseline" and set(result["gap_closed"]) == {"ceiling"}
    # Closing the gap to the ceiling itself: exactly all of it in every resample.
    itself = bootstrap_roc_auc(LABELS, scores, "ceiling_twin", 100, 0, gap_from="baseline", ceilings=("ceiling",))
    assert itself["gap_closed"]["ceiling"] == [1.0, 1.0]
    assert "gap_closed" not in bootstrap_roc_auc(LABELS, scores, "model", 50, 0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_resampled_aucs_do_not_depend_on_the_number_of_threads(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 3000)
    scores = {"distinct": labels + rng.normal(0, 1, 3000), "ties": np.round(labels * 0.3 + rng.normal(0, 0.5, 3000), 1)}
    # More resamples than the threads keep in flight, so the queue fills, drains and refills.
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_THREADS", threads)
    np.testing.assert_array_equal(resampled_aucs(labels, scores, 25, 5), _reference_bootstrap(labels, scores, 25, 5))
