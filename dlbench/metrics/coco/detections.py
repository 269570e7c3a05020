"""Detections as validated arrays (:class:`CocoDetections`), from COCO results or a model's boxes."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.data.coco_format import (
    is_int,
    is_number,
    read_json,
)
from dlbench.errors import MetricError
from dlbench.metrics.coco.ground_truth import (
    BOX_FORMATS,
    CocoGroundTruth,
    _as_int_ids,
    _boxes_array,
    _check_boxes,
    _few,
    _field,
)

# --------------------------------------------------------------------------- detections


@dataclass
class CocoDetections:
    """Validated detections as flat arrays: absolute ``[x, y, w, h]`` boxes and COCO ids."""

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return int(self.score.size)

    @classmethod
    def empty(cls) -> CocoDetections:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence[CocoDetections]) -> CocoDetections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.image_id for p in parts]),
            np.concatenate([p.category_id for p in parts]),
            np.concatenate([p.bbox for p in parts]),
            np.concatenate([p.score for p in parts]),
        )


def convert_boxes(
    boxes: Any,
    box_format: str = "xywh",
    *,
    normalized: bool = False,
    image_size: tuple[Any, Any] | None = None,
) -> np.ndarray:
    """Convert boxes to COCO's absolute ``[x, y, w, h]`` (float64).

    Args:
        boxes: (N, 4) boxes.
        box_format: ``"xywh"`` (COCO), ``"xyxy"`` (torchvision, Pascal VOC), ``"yxyx"``
            (TensorFlow Object Detection API) or ``"cxcywh"`` (DETR, YOLO).
        normalized: Coordinates are fractions of the image size (0..1).
        image_size: ``(width, height)`` of each box's image: two scalars or two (N,) arrays;
            needed when ``normalized``.

    Returns:
        (N, 4) float64 ``[x, y, w, h]`` in pixels.

    Example:
        >>> convert_boxes([[0.1, 0.2, 0.5, 0.6]], "yxyx", normalized=True, image_size=(100, 200))
        array([[20., 20., 40., 80.]])
    """
    if box_format not in BOX_FORMATS:
        raise MetricError(
            f"Expected box_format in {BOX_FORMATS}. Received: box_format={box_format!r}"
        )
    b = _boxes_array(boxes, "detection") if np.size(boxes) else np.zeros((0, 4))
    if box_format == "xywh":
        x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    elif box_format == "xyxy":
        x, y, w, h = b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    elif box_format == "yxyx":
        x, y, w, h = b[:, 1], b[:, 0], b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
    else:
        x, y, w, h = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 2], b[:, 3]
    if normalized:
        if image_size is None:
            raise MetricError(
                "Expected image_size=(width, height) with normalized=True. Received: None"
            )
        width = np.asarray(image_size[0], np.float64)
        height = np.asarray(image_size[1], np.float64)
        x, w = x * width, w * width
        y, h = y * height, h * height
    if box_format == "xywh" and not normalized:
        return b
    return np.stack([x, y, w, h], axis=1)


def detections_from_arrays(
    image_id: Any,
    boxes: Any,
    scores: Any,
    labels: Any,
    *,
    box_format: str = "xywh",
    normalized: bool = False,
    label_map: Any = None,
    ground_truth: CocoGroundTruth | None = None,
) -> CocoDetections:
    """Build :class:`CocoDetections` from flat arrays, as a detection model produces them.

    Args:
        image_id: (N,) image id of each detection, or a single id for all of them.
        boxes: (N, 4) boxes in ``box_format``.
        scores: (N,) confidence scores.
        labels: (N,) class labels: COCO category ids, or model indices mapped by ``label_map``.
        box_format: See :func:`convert_boxes`.
        normalized: Boxes are fractions of the image size (needs ``ground_truth`` for sizes).
        label_map: ``"sorted"`` (index i is the i-th smallest ground-truth category id, the
            usual contiguous model output), a sequence (``label_map[i]`` is the category id of
            index i) or a dict; ``None`` means labels already are category ids.
        ground_truth: Needed for ``normalized`` boxes and ``label_map="sorted"``.

    Raises:
        MetricError: shapes disagree, NaN scores, non-finite boxes, unmapped labels.
    """
    scores = _numeric_array(scores, "detection scores").reshape(-1)
    n = scores.size
    labels = np.asarray(labels).reshape(-1)
    image_id = np.asarray(image_id)
    if image_id.ndim == 0:
        image_id = np.full(n, image_id)
    image_id = _as_int_ids(image_id, "detection image_ids")
    bbox_in = _numeric_array(boxes, "detection boxes") if np.size(boxes) else np.zeros((0, 4))
    if bbox_in.ndim != 2 or bbox_in.shape[1] != 4:
        raise MetricError(
            f"Expected detection boxes of shape (N, 4). Received shape {bbox_in.shape}"
        )
    if not (labels.size == n == image_id.size == bbox_in.shape[0]):
        raise MetricError(
            "Expected one box, score, label and image id per detection. Received "
            f"{bbox_in.shape[0]} boxes, {n} scores, {labels.size} labels, {image_id.size} image ids"
        )
    if label_map is not None:
        labels = _map_labels(labels, label_map, ground_truth)
    category_id = _as_int_ids(labels, "detection category_ids")
    size = None
    if normalized:
        if ground_truth is None:
            raise MetricError(
                "Expected ground_truth (for image sizes) with normalized=True. Received: None"
            )
        pos = ground_truth.image_index(image_id)
        size = (ground_truth.widths[pos], ground_truth.heights[pos])
    bbox = convert_boxes(bbox_in, box_format, normalized=normalized, image_size=size)
    return CocoDetections(image_id, category_id, bbox, scores)


def _numeric_array(values: Any, what: str) -> np.ndarray:
    """``values`` as float64, refusing strings, bools and objects (NumPy would parse "1")."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged nested lists
        raise MetricError(
            f"Expected {what} as a rectangular array of numbers. Received ragged lists"
        ) from None
    if arr.size and arr.dtype.kind not in "iuf":
        flat = arr.reshape(-1).tolist()
        bad = [v for v in flat if not _numeric(v)] or flat
        raise MetricError(
            f"Expected numeric {what}. Received values of type {arr.dtype}: {_few(bad)}"
        )
    return arr.astype(np.float64, copy=False)


def _map_labels(labels: np.ndarray, label_map: Any, gt: CocoGroundTruth | None) -> np.ndarray:
    labels = _as_int_ids(labels, "detection labels")
    if isinstance(label_map, str):
        if label_map != "sorted":
            raise MetricError(
                f"Expected label_map='sorted', a sequence or a dict. Received: {label_map!r}"
            )
        if gt is None:
            raise MetricError("Expected ground_truth with label_map='sorted'. Received: None")
        table = gt.category_ids
    elif isinstance(label_map, Mapping):
        keys = np.asarray(sorted(label_map), np.int64)
        vals = np.asarray([label_map[k] for k in keys.tolist()], np.int64)
        pos = np.minimum(np.searchsorted(keys, labels), max(keys.size - 1, 0))
        bad = keys[pos] != labels if keys.size else np.ones(labels.size, bool)
        if bad.any():
            raise MetricError(
                f"Expected every label to be a key of label_map. Received unmapped labels: "
                f"{_few(np.unique(labels[bad]).tolist())}"
            )
        return vals[pos]
    else:
        table = np.asarray(label_map, np.int64)
    bad = (labels < 0) | (labels >= table.size)
    if bad.any():
        raise MetricError(
            f"Expected labels in [0, {table.size}) for a label_map of {table.size} categories. "
            f"Received: {_few(np.unique(labels[bad]).tolist())}"
        )
    return table[labels]


def _detections_from_results(results: list) -> CocoDetections:
    """Parse a COCO results list (dicts with image_id, category_id, bbox, score).

    Types are checked as the ground truth's are: ids must be ints (a string ``"17"`` is an
    error, not an id), ``bbox`` 4 numbers and ``score`` a number (NaN and inf are reported by
    the value checks that follow, with their own message).
    """
    image_ids = _field(results, "image_id", "detection")
    category_ids = _field(results, "category_id", "detection")
    boxes = _field(results, "bbox", "detection")
    scores = _field(results, "score", "detection")
    # Fast path: the set of Python types present decides validity for whole columns at once
    # (C-speed ``map(type, ...)``); only when a column holds a type outside the allowed ones
    # does the per-value walk below run, to name the first offending detection.
    if not (
        _types_within(image_ids, _INT_TYPES)
        and _types_within(category_ids, _INT_TYPES)
        and _types_within(scores, _NUMBER_TYPES)
        and _types_within(boxes, _BOX_TYPES)
        and all(n == 4 for n in set(map(len, boxes)))
        and _types_within(itertools.chain.from_iterable(boxes), _NUMBER_TYPES)
    ):
        _explain_bad_results(image_ids, category_ids, boxes, scores)
    n = len(results)
    try:
        return CocoDetections(
            np.asarray(image_ids, np.int64).reshape(n),
            np.asarray(category_ids, np.int64).reshape(n),
            np.asarray(boxes, np.float64).reshape(n, 4),
            np.asarray(scores, np.float64).reshape(n),
        )
    except OverflowError:  # a Python int beyond int64 (ids) or float (values) range
        _explain_bad_results(image_ids, category_ids, boxes, scores)
        for key, values in (("image_id", image_ids), ("category_id", category_ids)):
            for i, v in enumerate(values):
                if not -(2**63) <= int(v) < 2**63:
                    raise MetricError(
                        f"Expected `{key}` within int64 range. Received: {key}={v!r} "
                        f"(detection #{i})"
                    ) from None
        raise


def _explain_bad_results(image_ids: list, category_ids: list, boxes: list, scores: list) -> None:
    """Raise for the first detection whose id, bbox or score has the wrong type."""
    for key, values in (("image_id", image_ids), ("category_id", category_ids)):
        for i, v in enumerate(values):
            if not is_int(v):
                raise MetricError(
                    f"Expected `{key}` to be an int. Received: {key}={v!r} (detection #{i})"
                )
    for i, b in enumerate(boxes):
        if not (isinstance(b, (list, tuple)) and len(b) == 4 and all(_numeric(x) for x in b)):
            raise MetricError(
                "Expected each detection bbox to be 4 numbers [x, y, w, h]. Received "
                f"detection #{i}: bbox={b!r}"
            )
    for i, v in enumerate(scores):
        if not _numeric(v):
            raise MetricError(f"Expected a numeric score. Received detection #{i}: score={v!r}")


def _numeric_types() -> tuple[frozenset[type], frozenset[type]]:
    ints = {int} | {
        t
        for t in np.sctypeDict.values()
        if issubclass(t, np.integer) and not issubclass(t, np.timedelta64)
    }
    floats = {float} | {t for t in np.sctypeDict.values() if issubclass(t, np.floating)}
    return frozenset(ints), frozenset(ints | floats)


#: Exact types (not subclasses: ``bool`` is an ``int`` subclass and is refused) a detection's
#: ids may have, and its score and box coordinates.
_INT_TYPES, _NUMBER_TYPES = _numeric_types()
_BOX_TYPES = frozenset({list, tuple})


def _types_within(values: Any, allowed: frozenset[type]) -> bool:
    return set(map(type, values)) <= allowed


def _numeric(v: Any) -> bool:
    """An int or float, NaN and inf included (reported later as non-finite)."""
    return is_number(v) or (isinstance(v, (float, np.floating)) and not math.isfinite(v))


def as_detections(
    detections: Any,
    gt: CocoGroundTruth,
    *,
    box_format: str = "xywh",
    normalized: bool = False,
    label_map: Any = None,
) -> CocoDetections:
    """Accept every supported detections input and return validated :class:`CocoDetections`.

    Supported inputs: a path to a COCO results JSON file; a COCO results list; a dict of flat
    arrays (``image_id``, ``bbox``/``boxes``, ``score``/``scores``,
    ``category_id``/``labels``); or a :class:`CocoDetections`.
    """
    if isinstance(detections, (str, os.PathLike)):
        detections = read_json(detections, "a COCO results JSON file (a list of detections)")
    if isinstance(detections, CocoDetections):
        dets = detections
    elif isinstance(detections, Mapping):

        def pick(*names: str) -> Any:
            for name in names:
                if name in detections:
                    return detections[name]
            raise MetricError(
                f"Expected a detections dict with one of {names}. Received keys: {sorted(detections)}"
            )

        dets = detections_from_arrays(
            pick("image_id", "image_ids"),
            pick("bbox", "boxes"),
            pick("score", "scores"),
            pick("category_id", "labels", "category_ids"),
            box_format=box_format,
            normalized=normalized,
            label_map=label_map,
            ground_truth=gt,
        )
        box_format, normalized, label_map = "xywh", False, None  # already converted
    elif isinstance(detections, (list, tuple)):
        dets = _detections_from_results(list(detections)) if detections else CocoDetections.empty()
    else:
        raise MetricError(
            "Expected detections as a path, a COCO results list, a dict of arrays or "
            f"CocoDetections. Received: {type(detections).__name__}"
        )
    if label_map is not None:
        dets = CocoDetections(
            dets.image_id, _map_labels(dets.category_id, label_map, gt), dets.bbox, dets.score
        )
    if box_format != "xywh" or normalized:
        size = None
        if normalized:
            pos = gt.image_index(dets.image_id)
            size = (gt.widths[pos], gt.heights[pos])
        dets = CocoDetections(
            dets.image_id,
            dets.category_id,
            convert_boxes(dets.bbox, box_format, normalized=normalized, image_size=size),
            dets.score,
        )
    _validate_detections(dets, gt)
    return dets


def _validate_detections(dets: CocoDetections, gt: CocoGroundTruth) -> None:
    if not np.isfinite(dets.score).all():
        bad = np.flatnonzero(~np.isfinite(dets.score))
        raise MetricError(
            f"Expected finite detection scores. Received {bad.size} NaN or inf score(s), "
            f"first detection #{int(bad[0])}: score={dets.score[bad[0]]!r}"
        )
    _check_boxes(dets.bbox, "detection")
    gt.image_index(dets.image_id)
    gt.check_categories(dets.category_id)
