"""evaluation_stats: bootstrap intervals, the paired comparison and McNemar's exact test."""

import math

import numpy as np
import pytest
from evaluation_stats import mcnemar_exact, paired_comparison, proportion_interval


@pytest.mark.parametrize(
    "first_only, second_only, p_value",
    [
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 2**10
        (9, 1, 0.021484375),
        (0, 5, 0.0625),
        (3, 3, 1.0),
        (0, 0, 1.0),
        (10, 20, 0.09873715),
        (0, 40, 2 * 0.5**40),
    ],
)
def test_mcnemar_exact_known_values(first_only, second_only, p_value):
    assert mcnemar_exact(first_only, second_only) == pytest.approx(p_value, rel=1e-6)


def test_mcnemar_exact_agrees_with_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(2, 11), (15, 7), (50, 70), (0, 1)]:
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_exact_handles_many_discordant_rows():
    assert 0 < mcnemar_exact(5000, 5300) < 0.01
    with pytest.raises(ValueError, match="discordant counts must be >= 0"):
        mcnemar_exact(-1, 3)


def test_interval_contains_the_estimate_and_narrows_with_more_rows():
    small = proportion_interval([True] * 6 + [False] * 4, seed=3)
    large = proportion_interval([True] * 600 + [False] * 400, seed=3)
    for interval in (small, large):
        assert interval.low <= interval.estimate == 0.6 <= interval.high
    assert large.high - large.low < (small.high - small.low) / 5
    # About 1.96 standard errors either side for the large sample.
    half_width = 1.96 * math.sqrt(0.6 * 0.4 / 1000)
    assert (large.high - large.low) / 2 == pytest.approx(half_width, rel=0.1)


def test_interval_is_deterministic_per_seed_and_follows_the_confidence():
    outcomes = [True, False, True, True, False] * 20
    assert proportion_interval(outcomes, seed=5) == proportion_interval(outcomes, seed=5)
    wide = proportion_interval(outcomes, confidence=0.99, seed=5)
    narrow = proportion_interval(outcomes, confidence=0.8, seed=5)
    assert wide.low < narrow.low and narrow.high < wide.high
    assert proportion_interval([], seed=5) is None
    assert proportion_interval([False] * 7).as_dict() == {"low": 0.0, "high": 0.0, "rows": 7}


def test_interval_matches_resampling_rows_one_by_one():
    outcomes = np.array([True] * 37 + [False] * 63)
    rng = np.random.default_rng(0)
    resampled = outcomes[rng.integers(0, len(outcomes), size=(20000, len(outcomes)))].mean(axis=1)
    expected = np.quantile(resampled, [0.025, 0.975])
    interval = proportion_interval(list(outcomes), resamples=20000)
    assert (interval.low, interval.high) == pytest.approx(tuple(expected), abs=0.011)


def test_paired_comparison_counts_discordant_rows_and_bounds_the_difference():
    first = [True] * 30 + [True] * 9 + [False] * 1 + [False] * 60
    second = [True] * 30 + [False] * 9 + [True] * 1 + [False] * 60
    comparison = paired_comparison(first, second, seed=1)
    assert (comparison.both, comparison.first_only, comparison.second_only, comparison.neither) == (30, 9, 1, 60)
    assert comparison.difference == pytest.approx(0.08) and comparison.rows == 100
    assert comparison.low <= 0.08 <= comparison.high and comparison.low < comparison.high
    assert comparison.p_value == pytest.approx(0.021484375)
    assert comparison.as_dict("fine_tuned", "base") == {
        "difference": 0.08,
        "low": round(comparison.low, 4),
        "high": round(comparison.high, 4),
        "rows": 100,
        "fine_tuned_only": 9,
        "base_only": 1,
        "both": 30,
        "neither": 60,
        "p_value": 0.02148,
        "test": "mcnemar_exact",
    }


def test_paired_interval_matches_resampling_pairs_one_by_one():
    first = np.array([True] * 40 + [True] * 20 + [False] * 8 + [False] * 32)
    second = np.array([True] * 40 + [False] * 20 + [True] * 8 + [False] * 32)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, 100, size=(20000, 100))
    expected = np.quantile(first[picks].mean(axis=1) - second[picks].mean(axis=1), [0.025, 0.975])
    comparison = paired_comparison(list(first), list(second), resamples=20000)
    assert (comparison.low, comparison.high) == pytest.approx(tuple(expected), abs=0.011)


def test_identical_models_differ_by_nothing():
    outcomes = [True, False, False, True] * 10
    comparison = paired_comparison(outcomes, outcomes)
    assert (comparison.difference, comparison.low, comparison.high, comparison.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="same rows, got 2 and 3"):
        paired_comparison([True, False], [True, True, False])
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        proportion_interval([True], confidence=1.0)
    with pytest.raises(ValueError, match="resamples must be at least 1"):
        proportion_interval([True], resamples=0)
    assert paired_comparison([], []) is None
