"""Class-aware greedy non-maximum suppression: the float64 NumPy reference.

Semantics (the contract every backend's native path is tested against):

- Boxes are ``xyxy`` in pixels. Corners may come in any order: IoU is computed on
  ``min``/``max`` of each pair of coordinates (as TensorFlow and ONNX ``NonMaxSuppression`` do),
  and the boxes are returned exactly as given.
- A box whose (normalised) area is ``<= 0`` has IoU 0 with every box: it never suppresses and is
  never suppressed.
- Only scores strictly greater than ``score_threshold`` are candidates (TF, ONNX Runtime).
- A box is suppressed by an already kept box of the same label when their IoU is strictly greater
  than ``iou_threshold`` (an IoU equal to the threshold is kept: torchvision, TF, ONNX).
- **Tie order**: candidates are visited by decreasing score; equal scores are visited in
  increasing input index (TensorFlow's ``non_max_suppression`` and the ONNX reference).
  The kept detections of all labels are merged in that same order (score descending, then input
  index ascending) and cut to ``max_detections`` (COCO evaluates at most 100 per image).
- NaN or infinite boxes, or NaN scores, are an error (:class:`~dlbench.errors.DataError`);
  ``-inf``/``+inf`` scores are allowed (``-inf`` never passes a threshold).

Example:
    >>> import numpy as np
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
    >>> keep = nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]))
    >>> keep.indices.tolist()
    [0, 2]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlbench.errors import ConfigError, DataError

__all__ = ["Detections", "box_iou", "check_nms_inputs", "nms", "normalize_corners"]

#: COCO's per-image detection cap (``maxDets`` 100)
COCO_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class Detections:
    """Kept detections of one image, ordered by decreasing score (ties: lower index first).

    Attributes:
        boxes: ``(K, 4)`` xyxy, as given to :func:`nms` (float64 in the reference).
        scores: ``(K,)`` scores.
        labels: ``(K,)`` int64 labels.
        indices: ``(K,)`` int64 indices into the input arrays (None when a native path cannot
            report them).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_dict(self) -> dict[str, np.ndarray]:
        out = {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}
        if self.indices is not None:
            out["indices"] = self.indices
        return out


NmsKernel = Callable[[np.ndarray, np.ndarray, np.ndarray, float, float, int], "Detections"]


def native_nms(kernel: NmsKernel) -> Callable[..., Detections]:
    """Give a backend's NMS kernel the public signature of :func:`nms` and its input checks.

    The kernel is called as ``kernel(boxes, scores, labels, iou_threshold, score_threshold,
    max_detections)`` with the arrays :func:`check_nms_inputs` returns (float64 ``(N, 4)``,
    float64 ``(N,)``, int64 ``(N,)``), the thresholds as floats and the cap as an int; it returns
    the kept :class:`Detections`. Every native path is wrapped this way, so bad input fails the
    same way on every backend.
    """

    @functools.wraps(kernel)
    def nms(
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray | None,
        iou_threshold: float,
        score_threshold: float,
        max_detections: int,
    ) -> Detections:
        b, s, lab = check_nms_inputs(
            boxes, scores, labels, iou_threshold, score_threshold, max_detections
        )
        return kernel(b, s, lab, float(iou_threshold), float(score_threshold), int(max_detections))

    return nms


def check_nms_inputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert the inputs of :func:`nms` (shared by the native paths).

    Returns:
        ``(boxes float64 (N, 4), scores float64 (N,), labels int64 (N,))``.

    Raises:
        DataError: on mismatched shapes, NaN/inf boxes or NaN scores.
        ConfigError: on a threshold outside its range or a negative ``max_detections``.
    """
    b = np.asarray(boxes, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if b.ndim == 1 and b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise DataError(f"Expected `boxes` of shape (N, 4). Received: shape {b.shape}")
    if s.shape != (b.shape[0],):
        raise DataError(
            f"Expected `scores` of shape ({b.shape[0]},) to match the boxes. Received: {s.shape}"
        )
    if labels is None:
        lab = np.zeros(b.shape[0], dtype=np.int64)
    else:
        raw = np.asarray(labels)
        if raw.shape != (b.shape[0],):
            raise DataError(
                f"Expected `labels` of shape ({b.shape[0]},) to match the boxes. "
                f"Received: {raw.shape}"
            )
        if raw.size and not np.issubdtype(raw.dtype, np.integer):
            if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                raise DataError("Expected integer `labels`. Received non-integer values")
        lab = raw.astype(np.int64)
        if lab.size and lab.min() < 0:
            raise DataError(f"Expected non-negative `labels`. Received min {lab.min()}")
    if np.isnan(s).any():
        bad = np.flatnonzero(np.isnan(s))[:5].tolist()
        raise DataError(f"Expected scores without NaN. Received NaN at indices {bad}")
    if not np.isfinite(b).all():
        bad = np.flatnonzero(~np.isfinite(b).all(axis=1))[:5].tolist()
        raise DataError(f"Expected finite box coordinates. Received NaN/inf in boxes {bad}")
    iou = float(iou_threshold)
    if not 0.0 <= iou <= 1.0:
        raise ConfigError(
            f"Expected `iou_threshold` in [0, 1]. Received: iou_threshold={iou_threshold!r}"
        )
    if np.isnan(float(score_threshold)):
        raise ConfigError("Expected a number for `score_threshold`. Received: nan")
    if (
        not isinstance(max_detections, (int, np.integer))
        or isinstance(max_detections, bool)
        or max_detections < 0
    ):
        raise ConfigError(
            "Expected `max_detections` to be a non-negative int. "
            f"Received: max_detections={max_detections!r}"
        )
    return b, s, lab


def normalize_corners(boxes: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2`` (corners in any order)."""
    b = np.asarray(boxes)
    return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(len(a), len(b))`` of xyxy boxes (corners normalised; 0 if an area <= 0)."""
    a = normalize_corners(np.asarray(a, dtype=np.float64).reshape(-1, 4))
    b = normalize_corners(np.asarray(b, dtype=np.float64).reshape(-1, 4))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    valid = (area_a[:, None] > 0) & (area_b[None, :] > 0) & (union > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(valid, inter / np.where(valid, union, 1.0), 0.0)
    return iou


def candidate_order(scores: np.ndarray, score_threshold: float) -> np.ndarray:
    """Indices with ``score > score_threshold``, by decreasing score then increasing index."""
    idx = np.flatnonzero(scores > score_threshold)
    # lexsort: last key is primary; stable on the index key
    return idx[np.lexsort((idx, -scores[idx]))]


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    score_threshold: float = float("-inf"),
    max_detections: int = COCO_MAX_DETECTIONS,
) -> Detections:
    """Class-aware greedy NMS in float64 (see the module docstring for the exact semantics).

    Args:
        boxes: ``(N, 4)`` xyxy boxes.
        scores: ``(N,)`` scores (no NaN).
        labels: ``(N,)`` non-negative integer labels; None = one class.
        iou_threshold: Suppress when IoU is strictly greater, in ``[0, 1]``.
        score_threshold: Keep only scores strictly greater.
        max_detections: Keep at most this many over all labels (COCO: 100).

    Returns:
        :class:`Detections` with the kept boxes (float64), scores, labels and input indices.
    """
    b, s, lab = check_nms_inputs(
        boxes, scores, labels, iou_threshold, score_threshold, max_detections
    )
    order = candidate_order(s, float(score_threshold))
    kept: list[int] = []
    if order.size and max_detections > 0:
        iou = box_iou(b[order], b[order])
        same = lab[order][:, None] == lab[order][None, :]
        suppress = (iou > float(iou_threshold)) & same
        alive = np.ones(order.size, dtype=bool)
        for i in range(order.size):
            if not alive[i]:
                continue
            kept.append(i)
            if len(kept) == max_detections:
                break
            alive[i + 1 :] &= ~suppress[i, i + 1 :]
    idx = order[np.asarray(kept, dtype=np.int64)]
    return Detections(b[idx], s[idx], lab[idx], idx.astype(np.int64))
