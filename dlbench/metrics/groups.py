"""Group metrics for fairness checks: one metric per subgroup and the largest gap between them.

Example:
    >>> r = group_metric("accuracy", [0, 1, 0, 1], [0, 1, 1, 1], groups=["a", "a", "b", "b"])
    >>> r["by_group"], r["max_gap"]
    ({'a': 1.0, 'b': 0.5}, 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics.base import Metric
from dlbench.metrics.bootstrap import resolve_metric


def group_metric(
    metric: Any,
    y_true: Any,
    y_pred: Any,
    groups: Any,
    *,
    min_group_size: int = 1,
    **metric_kwargs: Any,
) -> dict[str, Any]:
    """``metric`` overall and per subgroup, with the largest gap between subgroups.

    Args:
        metric: A registered metric name, Metric class or instance, or ``f(y_true, y_pred)``.
        y_true, y_pred: As the metric takes them.
        groups: (N,) group label of each sample (any hashable values: str, int, ...).
        min_group_size: Groups with fewer samples are reported under ``too_small`` and left
            out of the gap.

    Returns:
        ``{"overall", "by_group" {group: value}, "support" {group: n}, "max_gap",
        "min_group", "max_group", "ratio" (min / max), "too_small" [groups]}``. Groups whose
        metric is undefined (NaN) are reported but left out of the gap.
    """
    fn = resolve_metric(metric, **metric_kwargs)
    t, p, g = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    if not (len(t) == len(p) == len(g)):
        raise MetricError(
            f"Expected one group label per sample. Received {len(t)} y_true, {len(p)} y_pred, "
            f"{len(g)} groups"
        )
    if len(t) == 0:
        raise MetricError("Expected at least one sample. Received none")
    keys, inverse = np.unique(g, return_inverse=True)
    by_group: dict[Any, float] = {}
    support: dict[Any, int] = {}
    too_small = []
    for k, key in enumerate(keys.tolist()):
        idx = np.flatnonzero(inverse == k)
        support[key] = int(idx.size)
        if idx.size < min_group_size:
            too_small.append(key)
            continue
        try:
            by_group[key] = float(fn(t[idx], p[idx]))
        except MetricError:
            by_group[key] = float("nan")
    valid = {k: v for k, v in by_group.items() if np.isfinite(v)}
    out: dict[str, Any] = {
        "overall": float(fn(t, p)),
        "by_group": by_group,
        "support": support,
        "too_small": too_small,
    }
    if valid:
        lo = min(valid, key=valid.__getitem__)
        hi = max(valid, key=valid.__getitem__)
        out.update(
            max_gap=valid[hi] - valid[lo],
            min_group=lo,
            max_group=hi,
            ratio=valid[lo] / valid[hi] if valid[hi] else float("nan"),
        )
    else:
        out.update(max_gap=float("nan"), min_group=None, max_group=None, ratio=float("nan"))
    return out


class GroupMetric(Metric):
    """Streaming :func:`group_metric`: ``update(y_true, y_pred, groups)`` per batch.

    Example:
        >>> m = GroupMetric("accuracy")
        >>> m.update([0, 1], [0, 0], groups=["a", "b"]); m.compute()["max_gap"]
        1.0
    """

    name = "group_metric"

    def __init__(self, metric: Any, *, min_group_size: int = 1, **metric_kwargs: Any) -> None:
        super().__init__()
        self.metric, self.metric_kwargs, self.min_group_size = metric, metric_kwargs, min_group_size
        self.add_state("targets", [], "cat")
        self.add_state("preds", [], "cat")
        self.add_state("groups", [], "cat")

    def update(self, y_true: Any, y_pred: Any, groups: Any = None) -> None:
        if groups is None:
            raise MetricError(
                "Expected groups=(N,) group labels in GroupMetric.update. Received None"
            )
        self.targets.append(np.asarray(y_true))
        self.preds.append(np.asarray(y_pred))
        self.groups.append(np.asarray(groups))

    def compute(self) -> dict[str, Any]:
        if not self.targets:
            return {"overall": float("nan"), "by_group": {}, "max_gap": float("nan")}
        return group_metric(
            self.metric,
            np.concatenate(self.targets),
            np.concatenate(self.preds),
            np.concatenate(self.groups),
            min_group_size=self.min_group_size,
            **self.metric_kwargs,
        )
