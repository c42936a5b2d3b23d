"""Verdicts that can come out every way: a claim's test, its p-value, and Holm's correction over a family.

A finding measures one statistic θ (a difference, a contrast, an accuracy above chance) and the paper claims
something of it, declared before the data:

- `Above(margin)`: θ > margin ("en-x below en-en": θ = en-en − en-x, margin 0). **Holds** when the interval
  lies above the margin, **does not hold** when it lies below, **cannot tell** otherwise.
- `Below(margin)`: θ < margin (a rate the paper calls low), the mirror of Above.
- `Within(margin)`: |θ| < margin ("close"): equivalence by two one-sided tests (Lakens 2017). **Holds** when the
  interval lies inside (−margin, margin), **does not hold** when it lies entirely outside [−margin, margin],
  cannot tell otherwise. Overlapping intervals are never read as equivalence.

Both verdicts are rejections of a null (θ on the other side, or |θ| on the other side of the margin), so each
finding gets p = 2 · min(p_holds, p_fails), where p_holds is the bootstrap probability mass on the side that
refutes the claim and p_fails the mass on the side that supports it (each one-sided, doubled: either verdict
may be drawn). Over the m findings a run tests, Holm's step-down adjusts these p-values; a finding is decided
(holds / does not hold) when its adjusted p is at most alpha, and its interval is shown at the level Holm
tested it at: 1 − alpha / (m − rank), rank = 0 for the smallest p. Bootstrap p-values are (k + 1) / (R + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell"


@dataclass(frozen=True)
class Above:
    """The claim θ > margin."""

    margin: float = 0.0

    def describe(self, statistic: str) -> str:
        return f"{statistic} > {self.margin:g}"

    def tails(self, draws: np.ndarray) -> tuple[float, float]:
        """(p_holds, p_fails): one-sided bootstrap p-values of the claim and of its reverse."""
        return _tail(draws <= self.margin), _tail(draws >= self.margin)

    def verdict(self, low: float, high: float) -> str:
        return HOLDS if low > self.margin else FAILS if high < self.margin else UNSURE


@dataclass(frozen=True)
class Below:
    """The claim θ < margin (a rate the paper calls low)."""

    margin: float

    def describe(self, statistic: str) -> str:
        return f"{statistic} < {self.margin:g}"

    def tails(self, draws: np.ndarray) -> tuple[float, float]:
        return _tail(draws >= self.margin), _tail(draws <= self.margin)

    def verdict(self, low: float, high: float) -> str:
        return HOLDS if high < self.margin else FAILS if low > self.margin else UNSURE


@dataclass(frozen=True)
class Within:
    """The claim |θ| < margin (equivalence, two one-sided tests)."""

    margin: float

    def describe(self, statistic: str) -> str:
        return f"|{statistic}| < {self.margin:g} (equivalence, two one-sided tests)"

    def tails(self, draws: np.ndarray) -> tuple[float, float]:
        # equivalence needs both one-sided tests to reject; non-equivalence needs either side beyond the margin
        holds = max(_tail(draws <= -self.margin), _tail(draws >= self.margin))
        fails = min(_tail(draws <= self.margin), _tail(draws >= -self.margin))
        return holds, fails

    def verdict(self, low: float, high: float) -> str:
        if -self.margin < low and high < self.margin:
            return HOLDS
        return FAILS if low > self.margin or high < -self.margin else UNSURE


def _tail(mask: np.ndarray) -> float:
    return (float(np.sum(mask)) + 1) / (len(mask) + 1)


@dataclass(frozen=True)
class Decision:
    """One finding's outcome in its family: the interval at Holm's level, the adjusted p, the verdict."""

    estimate: float
    low: float
    high: float
    confidence: float
    p_adjusted: float
    verdict: str


def holm(p_values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, each finding's rank in the step-down) of Holm's procedure."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    ranks = np.empty(m, dtype=int)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
        ranks[index] = rank
    return adjusted, ranks


def decide(estimates, draws, claims, alpha: float = 0.05, correct: bool = True) -> list[Decision]:
    """The decisions of a family of findings: estimates[i] and draws[i] (bootstrap replicates of θ_i) under
    claims[i] (Above, Below or Within). correct=False tests each at alpha alone (to show what Holm changes)."""
    draws = [np.asarray(d, dtype=float) for d in draws]
    tails = [claim.tails(d) for d, claim in zip(draws, claims)]
    p = [min(1.0, 2 * min(holds, fails)) for holds, fails in tails]
    adjusted, ranks = holm(p) if correct else (np.asarray(p), np.zeros(len(p), dtype=int))
    m = len(p) if correct else 1
    out = []
    for i, (estimate, d, claim) in enumerate(zip(estimates, draws, claims)):
        level = alpha / (m - ranks[i]) if correct else alpha
        low, high = np.quantile(d, [level / 2, 1 - level / 2])
        verdict = UNSURE
        if adjusted[i] <= alpha:
            # decided: the side the interval supports (at Holm's level the interval agrees with the p-value)
            verdict = claim.verdict(low, high)
            if verdict == UNSURE:
                holds, fails = tails[i]
                verdict = HOLDS if holds < fails else FAILS
        out.append(Decision(float(estimate), float(low), float(high), 1 - level, float(adjusted[i]), verdict))
    return out
