"""Statistics against NumPy on known samples; the bootstrap against the textbook bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis.stats import (
    NOISY_IQR_RATIO,
    bootstrap_median_ci,
    bootstrap_medians,
    relative_ci_width,
    summarize,
)

KNOWN = [
    np.array([0.5]),
    np.array([3.0, 1.0, 2.0]),
    np.array([1.0, 2.0, 3.0, 4.0, 100.0]),
    np.linspace(1e-6, 2e-6, 101),
    np.random.default_rng(0).lognormal(-9, 0.3, size=1000),
]


@pytest.mark.parametrize("x", KNOWN, ids=lambda x: f"n{len(x)}")
def test_summarize_matches_numpy(x):
    s = summarize(x)
    assert s["n"] == len(x)
    assert s["min"] == x.min() and s["max"] == x.max()
    assert s["mean"] == pytest.approx(np.mean(x), rel=1e-12)
    assert s["std"] == pytest.approx(np.std(x, ddof=1) if len(x) > 1 else 0.0, rel=1e-12)
    for key, q in (("q1", 25), ("median", 50), ("q3", 75), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert s[key] == pytest.approx(np.percentile(x, q), rel=1e-12), key
    assert s["p50"] == s["median"]
    assert s["iqr"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25), abs=1e-18)
    assert s["ci95_low"] <= s["median"] <= s["ci95_high"]


def test_known_values_by_hand():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s["median"], s["q1"], s["q3"], s["iqr"]) == (3.0, 2.0, 4.0, 2.0)
    assert s["p90"] == pytest.approx(61.6)  # 4 + 0.6 * (100 - 4)
    assert s["mean"] == 22.0
    assert s["noisy"] is True  # IQR/median = 2/3


def test_noisy_flag_threshold():
    tight = np.full(100, 1.0) + np.linspace(-0.01, 0.01, 100)
    assert summarize(tight)["noisy"] is False
    wide = np.linspace(0.5, 1.5, 101)  # IQR 0.5, median 1
    s = summarize(wide)
    assert s["iqr_ratio"] == pytest.approx(0.5) and s["iqr_ratio"] > NOISY_IQR_RATIO
    assert s["noisy"] is True


def test_summarize_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])


@pytest.mark.parametrize("n", [2, 7, 8, 51, 200])
def test_bootstrap_medians_match_textbook_bootstrap(n):
    """Drawing the median's rank directly has the same distribution as resampling."""
    x = np.sort(np.random.default_rng(n).lognormal(0, 0.5, n))
    fast = bootstrap_medians(x, resamples=40_000, seed=1)
    rng = np.random.default_rng(2)
    slow = np.median(x[rng.integers(0, n, size=(40_000, n))], axis=1)
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        # Same distribution: quantiles within a couple of neighbouring order statistics.
        a, b = np.quantile(fast, q), np.quantile(slow, q)
        spread = np.quantile(slow, 0.975) - np.quantile(slow, 0.025)
        assert abs(a - b) <= 0.1 * spread + 1e-12, (q, a, b)
    assert abs(fast.mean() - slow.mean()) < 0.05 * slow.std() + 1e-12 or n == 2


def test_bootstrap_ci_properties():
    x = np.random.default_rng(0).normal(10, 1, 2001)
    lo, hi = bootstrap_median_ci(x)
    assert lo < np.median(x) < hi
    assert bootstrap_median_ci(x) == (lo, hi)  # seeded: reproducible
    narrow = bootstrap_median_ci(np.random.default_rng(0).normal(10, 1, 20001))
    assert narrow[1] - narrow[0] < hi - lo  # more samples, narrower
    assert bootstrap_median_ci([]) != bootstrap_median_ci([])  # (nan, nan)
    assert bootstrap_median_ci([2.0]) == (2.0, 2.0)
    assert bootstrap_median_ci(np.full(50, 3.0)) == (3.0, 3.0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_median_ci(x, confidence=1.5)


def test_bootstrap_ci_coverage_of_true_median():
    """About 95% of CIs from independent normal samples contain the true median."""
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(300):
        lo, hi = bootstrap_median_ci(rng.normal(0, 1, 101), resamples=500, seed=i)
        hits += lo <= 0 <= hi
    assert 0.90 <= hits / 300 <= 0.99


def test_relative_ci_width():
    x = np.random.default_rng(0).normal(1.0, 0.01, 5000)
    lo, hi = bootstrap_median_ci(x, resamples=1000)
    assert relative_ci_width(x) == pytest.approx((hi - lo) / np.median(x))
    assert relative_ci_width([1.0]) == float("inf")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1e-9, 10.0), min_size=1, max_size=60))
def test_summarize_invariants(xs):
    s = summarize(xs)
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["p90"] <= s["p95"] <= s["p99"]
    assert s["p99"] <= s["max"]
    assert s["min"] <= s["ci95_low"] <= s["ci95_high"] <= s["max"]


def test_noisy_flag_is_at_ten_percent_of_the_median():
    assert NOISY_IQR_RATIO == 0.10
    s = summarize(np.linspace(0.85, 1.15, 101))  # IQR 0.15, median 1
    assert s["iqr_ratio"] == pytest.approx(0.15) and s["noisy"] is True
    s = summarize(np.linspace(0.95, 1.05, 101))  # IQR 0.05
    assert s["iqr_ratio"] == pytest.approx(0.05) and s["noisy"] is False


@pytest.mark.parametrize("confidence", [0.95, 0.80])
def test_ci_leaves_half_of_the_rest_in_each_tail(confidence):
    """The percentile interval cuts (1 - confidence) / 2 of the bootstrap medians off each end."""
    x = np.sort(np.random.default_rng(7).lognormal(0, 0.5, 20_001))
    lo, hi = bootstrap_median_ci(x, confidence=confidence, resamples=4000, seed=3, presorted=True)
    medians = bootstrap_medians(x, resamples=4000, seed=3)
    tail = (1 - confidence) / 2
    assert abs(np.mean(medians < lo) - tail) < 0.01
    assert abs(np.mean(medians > hi) - tail) < 0.01
