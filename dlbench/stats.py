"""Statistics of timing samples: percentiles, IQR, a bootstrap CI of the median, a noise flag.

All functions take raw samples in seconds and return plain floats, so the same code serves every
backend and the result file keeps both the samples and what was derived from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: IQR / median above which a run is flagged noisy.
NOISY_IQR_RATIO = 0.10


def bootstrap_median_ci(
    samples: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    # Resample in chunks to bound memory for long runs.
    medians = np.empty(resamples)
    chunk = max(1, 2_000_000 // x.size)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        medians[start:stop] = np.median(x[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def summarize(samples: Sequence[float] | np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Summary statistics of per-call times (seconds).

    Returns a JSON-safe dict with ``n, min, max, mean, std, median, p50, p90, p95, p99, q1, q3,
    iqr, ci95_low, ci95_high, noisy``. Percentiles use NumPy's default (linear) interpolation.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("Expected at least one timing sample. Received: 0 samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("Expected finite timing samples. Received: NaN or inf among them")
    q1, median, q3, p90, p95, p99 = np.percentile(x, [25, 50, 75, 90, 95, 99])
    lo, hi = bootstrap_median_ci(x, seed=seed)
    iqr = q3 - q1
    return {
        "n": int(x.size),
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "median": float(median),
        "p50": float(median),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(iqr),
        "ci95_low": lo,
        "ci95_high": hi,
        "noisy": bool(median > 0 and iqr / median > NOISY_IQR_RATIO),
    }
