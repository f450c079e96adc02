"""Bootstrap confidence intervals for ROC-AUC, paired across methods.

Every resample draws customers (test rows) with replacement and scores every method on the same draw, so the
interval of a difference between two methods reflects that they were measured on the same customers. A resample is
a vector of row counts, and the AUC of the resample is the AUC with those counts as weights: with the scores sorted
once per method, each resample costs a few passes over the rows instead of a sort.

The passes run on whole numbers (a resample's row counts are small integers), so every sum is exact: the AUC is the
same float as the weighted sum over tie groups in floating point gives (`weighted_auc`), only several times faster.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

# Threads computing resamples' AUCs: one per core, two at most (the machine this runs on has two).
BOOTSTRAP_THREADS = max(1, min(2, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class RankedScores:
    """One method's scores, sorted once: the rows in score order and the tie group of each (ties share a group)."""

    order: np.ndarray
    tie_group: np.ndarray
    groups: int

    @classmethod
    def of(cls, scores: np.ndarray) -> RankedScores:
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        new_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        tie_group = np.cumsum(new_group) - 1
        return cls(order=order, tie_group=tie_group, groups=int(tie_group[-1]) + 1 if len(scores) else 0)


def weighted_auc(ranked: RankedScores, positive_weight: np.ndarray, negative_weight: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half, with rows weighted."""
    positives = np.bincount(ranked.tie_group, positive_weight[ranked.order], ranked.groups)
    negatives = np.bincount(ranked.tie_group, negative_weight[ranked.order], ranked.groups)
    negatives_below = np.cumsum(negatives) - negatives
    pairs = positives.sum() * negatives.sum()
    if pairs == 0:
        return float("nan")
    return float((positives * (negatives_below + 0.5 * negatives)).sum() / pairs)


@dataclass(frozen=True)
class _CountedRanking:
    """One method's ranking prepared for whole-number resample counts: the rows in score order, whether each is
    positive, and where each tie group begins."""

    order: np.ndarray
    positive: np.ndarray
    group_start: np.ndarray

    @classmethod
    def of(cls, ranked: RankedScores, is_positive: np.ndarray) -> _CountedRanking:
        index_type = np.int32 if len(ranked.order) < np.iinfo(np.int32).max else np.int64
        group_start = np.ones(len(ranked.order), dtype=np.bool_)
        group_start[1:] = ranked.tie_group[1:] != ranked.tie_group[:-1]
        return cls(order=ranked.order.astype(index_type), positive=is_positive[ranked.order], group_start=group_start)

    def auc(self, counts: np.ndarray) -> float:
        """`weighted_auc` with the rows weighted by the whole-number `counts`: the same float, computed exactly
        in integers (twice the numerator, so that half a tie is whole)."""
        twice, positives, negatives = _twice_auc_numerator(counts, self.order, self.positive, self.group_start)
        pairs = int(positives) * int(negatives)
        if pairs == 0:
            return float("nan")
        # Each term of weighted_auc's float sum is exact and every partial sum is a multiple of 1/2 under 2**53, so
        # that sum is this number exactly; the division is the same one.
        return float(np.float64(int(twice) / 2) / np.float64(pairs))


@numba.njit(cache=True, nogil=True)
def _twice_auc_numerator(
    counts: np.ndarray, order: np.ndarray, positive: np.ndarray, group_start: np.ndarray
) -> tuple[int, int, int]:
    """One pass over the rows in score order: twice the weighted count of (positive, negative) pairs the positive
    wins, a tie counting one half (each tie group's positives beat the negatives of the groups below and tie with
    its own), and the weighted totals of positives and negatives. Whole numbers throughout, so the sum is exact.
    (A compiled loop: numpy's version gathered the counts three times per method and resample.)"""
    twice = 0
    negatives_below = 0
    positives_total = 0
    group_positives = 0
    group_negatives = 0
    for i in range(order.shape[0]):
        if group_start[i]:
            twice += group_positives * (2 * negatives_below + group_negatives)
            negatives_below += group_negatives
            positives_total += group_positives
            group_positives = 0
            group_negatives = 0
        count = int(counts[order[i]])
        if positive[i]:
            group_positives += count
        else:
            group_negatives += count
    twice += group_positives * (2 * negatives_below + group_negatives)
    return twice, positives_total + group_positives, negatives_below + group_negatives


def bootstrap_roc_auc(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    reference: str,
    resamples: int,
    seed: int,
    level: float = 0.95,
    gap_from: str | None = None,
    ceilings: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Percentile intervals for each method's ROC-AUC and for the `reference` method's gain over each other method
    (its AUC minus theirs), from `resamples` paired resamples of the rows; and, for each of `ceilings` among the
    methods, of the share of the gap from `gap_from` (a baseline) to that ceiling the reference closes."""
    if reference not in scores:
        raise ValueError(f"the reference method {reference!r} has no scores")
    draws = resampled_aucs(labels, scores, resamples, seed)
    names = list(scores)
    tails = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    reference_draws = draws[:, names.index(reference)]
    return {
        "resamples": resamples,
        "level": level,
        "roc_auc": {name: _interval(draws[:, i], tails) for i, name in enumerate(names)},
        "reference": reference,
        "gain_over": {
            name: _interval(reference_draws - draws[:, i], tails) for i, name in enumerate(names) if name != reference
        },
        **_gap_closed(draws, names, reference, gap_from, ceilings, tails),
    }


def _gap_closed(
    draws: np.ndarray,
    names: list[str],
    reference: str,
    gap_from: str | None,
    ceilings: tuple[str, ...],
    tails: tuple[float, float],
) -> dict[str, Any]:
    present = [ceiling for ceiling in ceilings if ceiling in names]
    if gap_from not in names or not present:
        return {}
    base = draws[:, names.index(gap_from)]
    gain = draws[:, names.index(reference)] - base
    return {
        "gap_from": gap_from,
        "gap_closed": {
            ceiling: _interval(gain / (draws[:, names.index(ceiling)] - base), tails) for ceiling in present
        },
    }


def resampled_aucs(labels: np.ndarray, scores: dict[str, np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """ROC-AUC of every method (columns, in the order of `scores`) on each of `resamples` paired resamples (rows).

    The resamples are drawn in order from one generator; their AUCs are computed on BOOTSTRAP_THREADS threads
    (numpy's gathers and sums release the GIL) while the next resamples are drawn. Each AUC is the same exact
    integer sum whichever thread computes it, so the result does not depend on the number of threads."""
    is_positive = np.asarray(labels, dtype=np.float64) != 0
    ranked = [
        _CountedRanking.of(RankedScores.of(np.asarray(values, dtype=np.float64)), is_positive)
        for values in scores.values()
    ]
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(ranked)))

    def score(draw: int, counts: np.ndarray) -> None:
        draws[draw] = [method.auc(counts) for method in ranked]

    pending: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=BOOTSTRAP_THREADS) as pool:
        for draw in range(resamples):
            if len(pending) > 2 * BOOTSTRAP_THREADS:  # a few resamples ahead at most: memory stays small
                pending.popleft().result()
            pending.append(pool.submit(score, draw, resample_counts(rng, len(labels))))
        for future in pending:
            future.result()
    return draws


def resample_counts(rng: np.random.Generator, rows: int) -> np.ndarray:
    """How often each row is drawn in one resample of `rows` rows with replacement."""
    counts = np.bincount(rng.integers(0, rows, rows), minlength=rows)
    # A row is drawn a handful of times at most: small integers gather fast.
    return counts.astype(np.uint16 if counts.max(initial=0) < 2**16 else np.int64)


def _interval(values: np.ndarray, tails: tuple[float, float]) -> list[float]:
    low, high = np.nanpercentile(values, tails)
    return [round(float(low), 5), round(float(high), 5)]
