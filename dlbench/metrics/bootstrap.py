"""Bootstrap confidence intervals for any metric.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 200); p = np.where(rng.random(200) < 0.8, y, (y + 1) % 3)
    >>> ci = bootstrap_ci("accuracy", y, p, n_resamples=200, seed=0)
    >>> ci["low"] <= ci["value"] <= ci["high"]
    True
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics.base import Metric

METHODS = ("percentile", "basic")


def resolve_metric(metric: Any, **kwargs: Any) -> Callable[[Any, Any], float]:
    """A ``f(y_true, y_pred) -> float`` from a metric name, a Metric class or instance, or a
    callable (returned as is)."""
    from dlbench.registry import metrics as registry

    if isinstance(metric, str):
        if metric not in registry:
            raise MetricError(
                f"Expected a metric name among {registry.names()}. Received: {metric!r}"
            )
        metric = registry.get(metric)
    if isinstance(metric, type) and issubclass(metric, Metric):
        cls = metric

        def fn(y_true: Any, y_pred: Any) -> float:
            m = cls(**kwargs)
            m.update(y_true, y_pred)
            return _single(m.compute(), cls.__name__)

        return fn
    if isinstance(metric, Metric):
        template = metric

        def fn_inst(y_true: Any, y_pred: Any) -> float:
            m = copy.deepcopy(template)
            m.reset()
            m.update(y_true, y_pred)
            return _single(m.compute(), type(template).__name__)

        return fn_inst
    if callable(metric):
        if kwargs:
            return lambda t, p: metric(t, p, **kwargs)
        return metric
    raise MetricError(
        f"Expected a metric name, Metric class or instance, or callable. Received: {metric!r}"
    )


def _single(result: dict, name: str) -> float:
    values = [v for v in result.values() if isinstance(v, (int, float, np.floating, np.integer))]
    if len(values) != 1:
        raise MetricError(
            f"Expected {name}.compute() to give one number for a bootstrap. Received: {result!r}"
        )
    return float(values[0])


def bootstrap_ci(
    metric: Any,
    y_true: Any,
    y_pred: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int | None = 0,
    **metric_kwargs: Any,
) -> dict[str, Any]:
    """A bootstrap confidence interval for ``metric(y_true, y_pred)``.

    Samples (rows of ``y_true`` and ``y_pred`` together) are drawn with replacement
    ``n_resamples`` times and the metric recomputed on each draw.

    Args:
        metric: A registered metric name (``"f1"``), a Metric class or instance (its
            ``compute()`` must give one number; pass options as ``metric_kwargs``), or a
            callable ``f(y_true, y_pred) -> float``.
        y_true, y_pred: As the metric takes them (``y_pred`` may be (N, C) scores).
        n_resamples: Number of bootstrap draws.
        confidence: Coverage of the interval, in (0, 1).
        method: ``"percentile"`` or ``"basic"`` (reflected percentile).
        seed: Seed of the resampling; ``None`` for fresh randomness.

    Returns:
        ``{"value", "low", "high", "confidence", "method", "n_resamples", "std_error"}``.
        Draws where the metric is undefined (NaN, or an error such as a missing class for
        ROC AUC) are left out, with a warning giving their number.
    """
    if method not in METHODS:
        raise MetricError(f"Expected method in {METHODS}. Received: method={method!r}")
    if not 0 < confidence < 1:
        raise MetricError(f"Expected confidence in (0, 1). Received: confidence={confidence!r}")
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise MetricError(f"Expected n_resamples to be a positive int. Received: {n_resamples!r}")
    fn = resolve_metric(metric, **metric_kwargs)
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if len(t) != len(p) or len(t) == 0:
        raise MetricError(
            f"Expected y_true and y_pred with the same, non-zero number of samples. "
            f"Received {len(t)} and {len(p)}"
        )
    value = float(fn(t, p))
    rng = np.random.default_rng(seed)
    stats = np.empty(int(n_resamples))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-draw zero-division notices would drown the output
        for i in range(int(n_resamples)):
            idx = rng.integers(0, len(t), len(t))
            try:
                stats[i] = fn(t[idx], p[idx])
            except MetricError:
                stats[i] = np.nan
    ok = stats[np.isfinite(stats)]
    skipped = stats.size - ok.size
    if skipped:
        warnings.warn(
            f"bootstrap_ci: the metric was undefined on {skipped} of {stats.size} resamples; "
            "they are left out of the interval.",
            UserWarning,
            stacklevel=2,
        )
    if ok.size == 0:
        return {
            "value": value,
            "low": float("nan"),
            "high": float("nan"),
            "confidence": confidence,
            "method": method,
            "n_resamples": int(n_resamples),
            "std_error": float("nan"),
        }
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(ok, [alpha, 1 - alpha])
    if method == "basic":
        lo, hi = 2 * value - hi, 2 * value - lo
    return {
        "value": value,
        "low": float(lo),
        "high": float(hi),
        "confidence": confidence,
        "method": method,
        "n_resamples": int(n_resamples),
        "std_error": float(np.std(ok, ddof=1)) if ok.size > 1 else 0.0,
    }
