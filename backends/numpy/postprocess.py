"""Post-processing on the NumPy backend: the float64 reference itself (:mod:`dlbench.detection`)."""

from __future__ import annotations

import numpy as np

from dlbench.detection import Decoder, Detections
from dlbench.detection import nms as _nms

__all__ = ["nms", "postprocess"]

#: every tie is broken by the documented order (score descending, then lower index)
TIES_UNORDERED = False


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> Detections:
    """:func:`dlbench.detection.nms` (float64)."""
    return _nms(boxes, scores, labels, iou_threshold, score_threshold, max_detections)


def postprocess(decoder: Decoder, raw: np.ndarray) -> list[Detections]:
    """:meth:`dlbench.detection.Decoder.postprocess` (float64)."""
    return decoder.postprocess(raw)
