"""Percentile bootstrap of means over items, vectorised with numpy.

Every interval xmrc reports is the interval of a mean over items: a direction's F1 or EM (the mean of its
item scores) or a paired difference (the mean of per-item differences of two models or settings on the
same items, which is the paired bootstrap: both means are taken over the same resampled items).
So one routine serves both: `mean_intervals(vectors)`.

How it is fast: resampling n items R times is an R x n matrix of counts (how often each item is drawn);
the resampled means of many vectors of the same length n are then one matrix product
scores (vectors x n) @ counts.T (n x R) / n. Vectors are bucketed by length; each length draws its own
counts, seeded by (seed, n), so an interval depends only on the seed, the number of resamples, the
vector (in its order) and nothing else in the run: adding a model does not move another model's interval.
Vectors of the same length share their resampled item positions; callers order items by id, so
directions and models over the same items are resampled jointly (paired), which the intervals of single
means do not need but do not mind either.

Memory is bounded by drawing the counts in chunks of at most CHUNK_ELEMENTS resampled items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xmrc.exceptions import XmrcError

# Resampled items per chunk: the chunk's positions and counts take ~16 bytes each (64 MiB at 2**22).
CHUNK_ELEMENTS = 2**22


@dataclass(frozen=True)
class BootstrapSettings:
    """Config key `intervals`: resamples, confidence (e.g. 0.95 for a 95% interval), seed."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.resamples, int) and self.resamples >= 1):
            raise XmrcError(f"intervals.resamples must be an integer >= 1, got {self.resamples!r}")
        if not 0 < self.confidence < 1:
            raise XmrcError(f"intervals.confidence must be between 0 and 1 (exclusive), got {self.confidence!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise XmrcError(f"intervals.seed must be an integer >= 0, got {self.seed!r}")

    @property
    def quantiles(self) -> tuple[float, float]:
        tail = (1 - self.confidence) / 2
        return tail, 1 - tail


def resampled_counts(n: int, resamples: int, seed: int, chunk_elements: int = CHUNK_ELEMENTS):
    """Yield (rows x n) float64 count matrices, rows summing to n, that together hold `resamples` bootstrap
    draws of n items; the draws depend on (seed, n) only, not on the chunking: positions come from
    `Generator.random`, one 64-bit draw each, which does not carry state between calls (bounded
    `integers` does, so its stream would change with the chunk size)."""
    if n < 1:
        raise XmrcError("cannot resample an empty set of items")
    rng = np.random.default_rng([seed, n])
    rows_per_chunk = max(1, chunk_elements // n)
    done = 0
    while done < resamples:
        rows = min(rows_per_chunk, resamples - done)
        positions = (rng.random((rows, n)) * n).astype(np.int64)
        np.minimum(positions, n - 1, out=positions)  # u * n rounds to n only when u is within 2**-53 of 1
        positions += (np.arange(rows, dtype=np.int64) * n)[:, None]
        yield np.bincount(positions.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        done += rows


def resampled_means(
    matrix: np.ndarray, settings: BootstrapSettings, chunk_elements: int = CHUNK_ELEMENTS
) -> np.ndarray:
    """(vectors x resamples) bootstrap means of each row of `matrix` (vectors x n), all rows resampled with
    the same item draws."""
    n = matrix.shape[1]
    out = np.empty((matrix.shape[0], settings.resamples))
    start = 0
    for counts in resampled_counts(n, settings.resamples, settings.seed, chunk_elements):
        out[:, start : start + len(counts)] = matrix @ counts.T / n
        start += len(counts)
    return out


def mean_intervals(
    vectors: Sequence[np.ndarray], settings: BootstrapSettings, chunk_elements: int = CHUNK_ELEMENTS
) -> np.ndarray:
    """(len(vectors) x 3): the mean of each vector and the lower and upper bound of its percentile
    bootstrap interval at settings.confidence. A vector's items are resampled with replacement; for a
    paired difference pass the per-item differences."""
    out = np.empty((len(vectors), 3))
    by_length: dict[int, list[int]] = {}
    for i, vector in enumerate(vectors):
        if len(vector) == 0:
            raise XmrcError(f"cannot bootstrap the mean of an empty set of items (vector {i})")
        by_length.setdefault(len(vector), []).append(i)
    low, high = settings.quantiles
    for members in by_length.values():
        matrix = np.vstack([np.asarray(vectors[i], dtype=np.float64) for i in members])
        if np.isnan(matrix).any():
            raise XmrcError("item scores hold NaN; every item needs a score to be resampled")
        means = resampled_means(matrix, settings, chunk_elements)
        out[members, 0] = matrix.mean(axis=1)
        out[members, 1:] = np.quantile(means, [low, high], axis=1).T
    return out
