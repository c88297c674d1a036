"""How sure the evaluation is: bootstrap intervals per model and a paired test of two models.

A test set is a sample; an accuracy of 0.62 on 100 rows could be 0.52 or 0.71 on the next 100.
Each model's accuracy gets a percentile bootstrap interval over the test rows, and the fine-tuned
and the base model, which answered the same rows, are compared pairwise: the difference of their
accuracies with its paired-bootstrap interval, and McNemar's exact test on the rows where exactly
one of them is right.

The outcomes are right/wrong per row, so resampling rows with replacement only changes how many
rows of each kind (right, wrong; or for a pair: both, only the first, only the second, neither)
the resample holds. The bootstrap draws those counts directly, binomially or multinomially, which
has exactly the distribution of resampling the rows one by one and costs nothing per row. Every
draw comes from a generator seeded with the given seed: the same outcomes and seed give the same
intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    rows: int

    def as_dict(self) -> dict:
        return {"low": round(self.low, 4), "high": round(self.high, 4), "rows": self.rows}


@dataclass(frozen=True)
class PairedComparison:
    """The first model against the second on the same rows."""

    difference: float  # first's accuracy minus second's
    low: float
    high: float
    rows: int
    first_only: int  # rows only the first model got right (McNemar's b)
    second_only: int  # rows only the second model got right (McNemar's c)
    both: int
    neither: int
    p_value: float  # McNemar's exact test, two-sided

    def as_dict(self, first: str = "first", second: str = "second") -> dict:
        return {
            "difference": round(self.difference, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "rows": self.rows,
            f"{first}_only": self.first_only,
            f"{second}_only": self.second_only,
            "both": self.both,
            "neither": self.neither,
            "p_value": _significant(self.p_value),
            "test": "mcnemar_exact",
        }


def _significant(value: float, digits: int = 4) -> float:
    """``value`` to a few significant digits: p-values can be tiny, rounding to places would zero them."""
    return float(f"{value:.{digits}g}")


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def proportion_interval(
    outcomes: Sequence[bool], confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Interval | None:
    """The share of right outcomes with its percentile bootstrap interval; None without outcomes."""
    _check(confidence, resamples)
    rows = len(outcomes)
    if rows == 0:
        return None
    right = sum(bool(value) for value in outcomes)
    draws = np.random.default_rng(seed).binomial(rows, right / rows, size=resamples) / rows
    low, high = _percentiles(draws, confidence)
    return Interval(right / rows, low, high, rows)


def mcnemar_exact(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar test: under "both models are equally good" each discordant row is a
    fair coin, so the p-value is twice the binomial tail of the smaller count (at most 1)."""
    if first_only < 0 or second_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {first_only} and {second_only}")
    discordant = first_only + second_only
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(first_only, second_only) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def paired_comparison(
    first: Sequence[bool],
    second: Sequence[bool],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedComparison | None:
    """``first`` against ``second``, outcome by outcome on the same rows; None without rows."""
    _check(confidence, resamples)
    if len(first) != len(second):
        raise ValueError(f"paired outcomes need the same rows, got {len(first)} and {len(second)}")
    rows = len(first)
    if rows == 0:
        return None
    pairs = [(bool(a), bool(b)) for a, b in zip(first, second, strict=True)]
    both = pairs.count((True, True))
    first_only = pairs.count((True, False))
    second_only = pairs.count((False, True))
    neither = rows - both - first_only - second_only
    shares = np.array([both, first_only, second_only, neither], dtype=float) / rows
    counts = np.random.default_rng(seed).multinomial(rows, shares, size=resamples)
    draws = (counts[:, 1] - counts[:, 2]) / rows
    low, high = _percentiles(draws, confidence)
    return PairedComparison(
        (first_only - second_only) / rows,
        low,
        high,
        rows,
        first_only,
        second_only,
        both,
        neither,
        mcnemar_exact(first_only, second_only),
    )
