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

import math
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


def quantile_ci(
    sorted_samples: np.ndarray, q: float, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free confidence interval of the ``q`` quantile (order statistics).

    The number of samples below the true ``q`` quantile is Binomial(n, q); the interval runs
    between the order statistics at ``n q -/+ z sqrt(n q (1 - q))`` (normal approximation of
    the binomial, clipped to the sample). With too few samples to bound the tail the upper end
    is the largest sample, which makes the interval wide, as it should be.

    Example:
        >>> lo, hi = quantile_ci(np.arange(1.0, 1001.0), 0.99)
        >>> 980 < lo < 990 < hi <= 1000
        True
    """
    x = np.asarray(sorted_samples, dtype=np.float64)
    n = x.size
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(_normal_quantile(0.5 + confidence / 2.0))
    half = z * math.sqrt(n * q * (1.0 - q))
    lo = int(math.floor(n * q - half))
    hi = int(math.ceil(n * q + half))
    return (float(x[min(max(lo, 0), n - 1)]), float(x[min(max(hi, 0), n - 1)]))


def _normal_quantile(p: float) -> float:
    """Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (
        -39.69683028665376,
        220.9460984245205,
        -275.9285104469687,
        138.3577518672690,
        -30.66479806614716,
        2.506628277459239,
    )
    b = (
        -54.47609879822406,
        161.5858368580409,
        -155.6989798598866,
        66.80131188771972,
        -13.28068155288572,
    )
    c = (
        -7.784894002430293e-03,
        -0.3223964580411365,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    )
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    if p < 0.02425:
        t = math.sqrt(-2 * math.log(p))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / (
            (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1
        )
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    t = p - 0.5
    r = t * t
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * t
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


def wilson_ci(successes: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (an accuracy measured on ``n`` samples).

    Example:
        >>> lo, hi = wilson_ci(90, 100)
        >>> round(lo, 3), round(hi, 3)
        (0.826, 0.945)
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = _normal_quantile(0.5 + confidence / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def intervals_separate(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """Whether two intervals are disjoint (a difference the noise cannot explain).

    ``False`` when either interval is unknown: without an interval nothing can be told apart.
    """
    if not a or not b or any(v is None or not math.isfinite(v) for v in (*a, *b)):
        return False
    return a[1] < b[0] or b[1] < a[0]


def relative_noise(stats: dict[str, Any] | None) -> float | None:
    """A cell's own noise level: half its IQR relative to its median (the typical distance of
    one call from the median), or ``None`` when unknown."""
    if not stats:
        return None
    ratio = stats.get("iqr_ratio")
    if ratio is None:
        med, iqr = stats.get("median"), stats.get("iqr")
        if not med or iqr is None:
            return None
        ratio = iqr / med
    return float(ratio) / 2.0


def summarize(samples: Sequence[float] | np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Summary statistics of per-call times (seconds).

    Returns a JSON-safe dict with ``n, min, max, mean, std, median, p50, p90, p95, p99, q1, q3,
    iqr, iqr_ratio, ci95_low, ci95_high, p99_ci95_low, p99_ci95_high, noisy``. Percentiles use NumPy's default (linear)
    interpolation; ``std`` is the sample standard deviation (``ddof=1``); ``noisy`` is
    ``iqr / median > NOISY_IQR_RATIO``; ``p99_ci95_*`` is :func:`quantile_ci` of the p99.
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
    p99_lo, p99_hi = quantile_ci(x, 0.99)
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
        "p99_ci95_low": p99_lo,
        "p99_ci95_high": p99_hi,
        "noisy": bool(ratio > NOISY_IQR_RATIO),
    }
