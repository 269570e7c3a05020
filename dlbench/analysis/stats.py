"""Statistics of timing samples: percentiles, IQR, a bootstrap CI of the median, a noise flag.

All functions take raw samples in seconds and return plain floats, so the same code serves every
backend and the result file keeps both the samples and what was derived from them.

The bootstrap CI of the median is computed without materialising the resamples: after one sort,
the median of a bootstrap resample of size ``n`` is an order statistic of ``n`` uniform draws,
whose rank has a known (Beta) distribution. Drawing that rank directly gives exactly the same
distribution as the textbook resample-and-take-the-median bootstrap, in O(n log n + resamples)
instead of O(n * resamples), so it stays cheap for the millions of samples a tiny model produces
(and cheap enough to be the stopping test of :func:`dlbench.execution.measure.time_model`).

Example:
    >>> s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> s["median"], round(s["p90"], 6), s["noisy"]
    (3.0, 61.6, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: IQR / median above which a run is flagged noisy.
NOISY_IQR_RATIO = 0.10

#: Percentiles reported by :func:`summarize` (NumPy's default linear interpolation).
PERCENTILES = {"q1": 25, "median": 50, "q3": 75, "p90": 90, "p95": 95, "p99": 99}


def _as_samples(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("Expected finite timing samples. Received: NaN or inf among them")
    return x


def bootstrap_medians(
    sorted_samples: np.ndarray, *, resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples of ``sorted_samples`` (sorted ascending).

    Same distribution as ``np.median(rng.choice(x, size=(resamples, n)), axis=1)``, drawn through
    the order statistics of uniforms: the ``m``-th smallest of ``n`` uniform indices is
    ``floor(n * U)`` with ``U ~ Beta(m, n - m + 1)``, and the next one above it is
    ``U + (1 - U) * Beta(1, n - m)``.
    """
    x = np.asarray(sorted_samples, dtype=np.float64)
    n = x.size
    rng = np.random.default_rng(seed)
    m = (n + 1) // 2  # 1-based rank of the (lower) middle element
    u_m = rng.beta(m, n - m + 1, size=resamples)
    lower = x[np.minimum((u_m * n).astype(np.int64), n - 1)]
    if n % 2:
        return lower
    u_next = u_m + (1.0 - u_m) * rng.beta(1, n - m, size=resamples)
    upper = x[np.minimum((u_next * n).astype(np.int64), n - 1)]
    return (lower + upper) / 2.0


def bootstrap_median_ci(
    samples: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    presorted: bool = False,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median.

    Args:
        samples: Timing samples (seconds).
        confidence: Coverage of the interval (0.95 for a 95% CI).
        resamples: Bootstrap resamples.
        seed: Seed of the resampling, so a result file can be recomputed exactly.
        presorted: ``samples`` is already sorted ascending (skips the sort).

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no samples.

    Example:
        >>> lo, hi = bootstrap_median_ci(np.arange(1.0, 102.0))
        >>> lo < 51.0 < hi
        True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1). Received: confidence={confidence!r}")
    x = _as_samples(samples)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    if not presorted:
        x = np.sort(x)
    medians = bootstrap_medians(x, resamples=resamples, seed=seed)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def relative_ci_width(
    samples: Sequence[float] | np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> float:
    """Width of the 95% bootstrap CI of the median divided by the median (inf if undefined)."""
    x = np.sort(_as_samples(samples))
    if x.size < 2:
        return float("inf")
    med = float(np.median(x))
    if med <= 0:
        return float("inf")
    lo, hi = bootstrap_median_ci(x, resamples=resamples, seed=seed, presorted=True)
    return (hi - lo) / med


def summarize(samples: Sequence[float] | np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Summary statistics of per-call times (seconds).

    Returns a JSON-safe dict with ``n, min, max, mean, std, median, p50, p90, p95, p99, q1, q3,
    iqr, iqr_ratio, ci95_low, ci95_high, noisy``. Percentiles use NumPy's default (linear)
    interpolation; ``std`` is the sample standard deviation (``ddof=1``); ``noisy`` is
    ``iqr / median > NOISY_IQR_RATIO``.
    """
    x = _as_samples(samples)
    if x.size == 0:
        raise ValueError("Expected at least one timing sample. Received: 0 samples")
    x = np.sort(x)
    q = dict(zip(PERCENTILES, np.percentile(x, list(PERCENTILES.values()))))
    lo, hi = bootstrap_median_ci(x, seed=seed, presorted=True)
    median = float(q["median"])
    iqr = float(q["q3"] - q["q1"])
    ratio = iqr / median if median > 0 else float("inf")
    return {
        "n": int(x.size),
        "min": float(x[0]),
        "max": float(x[-1]),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "median": median,
        "p50": median,
        "p90": float(q["p90"]),
        "p95": float(q["p95"]),
        "p99": float(q["p99"]),
        "q1": float(q["q1"]),
        "q3": float(q["q3"]),
        "iqr": iqr,
        "iqr_ratio": ratio if np.isfinite(ratio) else None,
        "ci95_low": lo,
        "ci95_high": hi,
        "noisy": bool(ratio > NOISY_IQR_RATIO),
    }
