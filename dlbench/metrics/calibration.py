"""Expected calibration error of a classifier's top-label confidence.

Confidences are binned into ``n_bins`` equal-width bins over [0, 1] (a confidence on a bin
edge goes to the upper bin; 1.0 goes to the last). The state is per-bin counts, summed
confidences and summed hits, so the metric streams and merges exactly. Defaults follow
torchmetrics' ``MulticlassCalibrationError``: 15 bins, L1 norm, top-label confidence.

Example:
    >>> import numpy as np
    >>> m = CalibrationError(n_bins=10)
    >>> m.update([0, 1], np.array([[0.9, 0.1], [0.6, 0.4]]))
    >>> round(m.compute()["ece"], 6)
    0.35
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics._inputs import (
    as_labels,
    as_scores,
    check_from_logits,
    check_same_length,
    probability_atol,
    to_probabilities,
)
from dlbench.metrics.base import Metric

NORMS = ("l1", "l2", "max")


class CalibrationError(Metric):
    """Expected (``norm="l1"``), root-mean-square (``"l2"``) or maximum (``"max"``) calibration
    error.

    Args:
        n_bins: Number of equal-width confidence bins.
        norm: ``"l1"`` (ECE), ``"l2"`` or ``"max"`` (MCE).
        from_logits: ``None`` (auto): softmax when the rows are logits (a value outside
            [0, 1] or a row summing far from 1; rows of [0, 1] that sum to 1 only roughly, beyond
            the tolerance of their dtype, are refused), decided per batch; ``True``: always;
            ``False``: never.
    """

    name = "ece"

    def __init__(
        self, n_bins: int = 15, *, norm: str = "l1", from_logits: bool | None = None
    ) -> None:
        super().__init__()
        if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise MetricError(f"Expected n_bins to be a positive int. Received: n_bins={n_bins!r}")
        if norm not in NORMS:
            raise MetricError(f"Expected norm in {NORMS}. Received: norm={norm!r}")
        self.n_bins, self.norm = int(n_bins), norm
        self.from_logits = check_from_logits(from_logits)
        self.add_state("bin_count", np.zeros(self.n_bins, np.int64), "sum")
        self.add_state("bin_confidence", np.zeros(self.n_bins, np.float64), "sum")
        self.add_state("bin_hits", np.zeros(self.n_bins, np.int64), "sum")

    def update(self, y_true: Any, y_pred: Any) -> None:
        t = as_labels(y_true)
        atol = probability_atol(np.asarray(y_pred).dtype)
        p = to_probabilities(as_scores(y_pred, "y_pred"), self.from_logits, atol)
        check_same_length(t, p)
        conf = p.max(axis=1)
        hit = np.argmax(p, axis=1) == t
        edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, self.n_bins - 1)
        self.bin_count = self.bin_count + np.bincount(b, minlength=self.n_bins)
        self.bin_confidence = self.bin_confidence + np.bincount(b, conf, self.n_bins)
        self.bin_hits = self.bin_hits + np.bincount(b, hit.astype(np.int64), self.n_bins).astype(
            np.int64
        )

    def compute(self) -> dict[str, Any]:
        return {
            "ece": _calibration_error(self.bin_count, self.bin_confidence, self.bin_hits, self.norm)
        }

    def curve(self) -> dict[str, list]:
        """Reliability diagram data: per bin, mean confidence, accuracy and sample count."""
        n = np.maximum(self.bin_count, 1)
        return {
            "bin_edges": np.linspace(0, 1, self.n_bins + 1).tolist(),
            "confidence": (self.bin_confidence / n).tolist(),
            "accuracy": (self.bin_hits / n).tolist(),
            "count": self.bin_count.tolist(),
        }


def _calibration_error(count: np.ndarray, conf: np.ndarray, hits: np.ndarray, norm: str) -> float:
    total = count.sum()
    if total == 0:
        return float("nan")
    used = count > 0
    gap = np.abs(hits[used] / count[used] - conf[used] / count[used])
    weight = count[used] / total
    if norm == "l1":
        return float(np.sum(gap * weight))
    if norm == "l2":
        return float(np.sqrt(np.sum(gap**2 * weight)))
    return float(gap.max())


def calibration_error(
    y_true: Any,
    y_score: Any,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    from_logits: bool | None = None,
) -> float:
    """Functional :class:`CalibrationError`."""
    m = CalibrationError(n_bins, norm=norm, from_logits=from_logits)
    m.update(y_true, y_score)
    return m.compute()["ece"]


expected_calibration_error = calibration_error
