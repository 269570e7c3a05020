"""COCO detection evaluation: the twelve standard numbers, exactly as pycocotools reports them.

dlbench does not evaluate detections by hand. The engine is faster-coco-eval (a C++
implementation of pycocotools' matching and accumulation that reproduces its numbers), with
pycocotools selectable through ``engine="pycocotools"``. dlbench's part is around the engine:

- one validated, array-based view of the ground truth (:class:`CocoGroundTruth`, parsed once and
  reusable) and of the detections, with clear errors for unknown image or category ids,
  malformed boxes, NaN scores and empty ground truth;
- conversion of model outputs (``xyxy``, ``yxyx``, ``cxcywh``, normalised boxes, contiguous
  class indices) to COCO's absolute ``[x, y, w, h]`` and category ids;
- building the engine's inputs without a per-detection Python pass where it can be avoided
  (vectorised IoU with pycocotools' exact arithmetic, detections beyond ``max(max_dets)`` per
  image and category dropped before the engine sees them, as the engine would);
- the per-category and per-size breakdowns and the precision/recall curves.

Handled pitfalls of the reference tools: a ground-truth annotation id of 0 (dlbench numbers
annotations itself, so it cannot collide with "unmatched"), empty detections (evaluated as a
model that found nothing, instead of ``loadRes([])`` raising), ground truth without
``iscrowd`` (taken as 0) or without ``area`` (taken as ``w * h``, as for detections), and
custom ``max_dets`` (AP is read at the largest value, whatever it is).

Example:
    >>> from dlbench.metrics.coco.synthetic import make_coco_set
    >>> gt, dt = make_coco_set(num_images=20, seed=0)
    >>> result = coco_evaluate(gt, dt)
    >>> 0.0 <= result["AP"] <= 1.0
    True
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.data.coco_format import (
    GROUND_TRUTH_FIELDS,
    is_int,
    is_number,
    read_json,
    validate_instances,
)
from dlbench.errors import MetricError

__all__ = [
    "STAT_KEYS",
    "BOX_FORMATS",
    "CocoGroundTruth",
    "CocoDetections",
    "coco_evaluate",
    "convert_boxes",
    "load_ground_truth",
    "detections_from_arrays",
]

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BOX_FORMATS = ("xywh", "xyxy", "yxyx", "cxcywh")
ENGINES = ("faster_coco_eval", "pycocotools")
AREA_LABELS = ("all", "small", "medium", "large")
# pycocotools' ranges (inclusive ends; the GT ``area`` field, not w*h).
AREA_RANGES = ((0.0, 1e10), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e10))
_SHOW = 5  # how many offending values an error message lists


def _few(values: Any) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")


def _as_int_ids(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False).reshape(-1)
    if arr.dtype.kind == "f":
        ok = np.isfinite(arr) & (arr == np.round(arr))
        if ok.all():
            return arr.astype(np.int64).reshape(-1)
        bad = arr.reshape(-1)[~ok.reshape(-1)]
        raise MetricError(f"Expected integer {what}. Received: {_few(bad.tolist())}")
    values = arr.reshape(-1).tolist()
    if arr.dtype.kind == "O" and all(is_int(v) for v in values):
        return np.asarray(values, np.int64)
    bad = [v for v in values if not is_int(v)] if arr.dtype.kind == "O" else values
    raise MetricError(f"Expected integer {what}. Received values of type {arr.dtype}: {_few(bad)}")


# --------------------------------------------------------------------------- ground truth


@dataclass
class CocoGroundTruth:
    """A validated COCO instances file held as arrays; parse once, evaluate many times.

    Attributes:
        image_ids: (I,) sorted image ids.
        widths, heights: (I,) image sizes (0 where the file gives none).
        category_ids: (K,) sorted category ids.
        category_names: Names, aligned with ``category_ids``.
        ann_image: (N,) image id of each annotation.
        ann_category: (N,) category id of each annotation.
        ann_bbox: (N, 4) float64 ``[x, y, w, h]``.
        ann_area: (N,) float64 area (the file's ``area`` field, or ``w * h``).
        ann_iscrowd: (N,) bool.
    """

    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    category_ids: np.ndarray
    category_names: list[str]
    ann_image: np.ndarray
    ann_category: np.ndarray
    ann_bbox: np.ndarray
    ann_area: np.ndarray
    ann_iscrowd: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.image_ids.size)

    def image_index(self, image_ids: np.ndarray, what: str = "detections") -> np.ndarray:
        """Positions of ``image_ids`` in :attr:`image_ids`; unknown ids raise MetricError."""
        pos = np.searchsorted(self.image_ids, image_ids)
        pos = np.minimum(pos, max(self.num_images - 1, 0))
        bad = self.image_ids[pos] != image_ids if self.num_images else np.ones(len(image_ids), bool)
        if bad.any():
            unknown = np.unique(np.asarray(image_ids)[bad])
            raise MetricError(
                f"Expected every image_id in the {what} to be an image of the ground truth "
                f"({self.num_images} images). Received unknown image_id(s): {_few(unknown.tolist())}"
            )
        return pos

    def check_categories(self, category_ids: np.ndarray, what: str = "detections") -> None:
        """Raise MetricError when ``category_ids`` holds a category the ground truth lacks."""
        known = np.isin(category_ids, self.category_ids)
        if not known.all():
            unknown = np.unique(np.asarray(category_ids)[~known])
            raise MetricError(
                f"Expected every category_id in the {what} to be a category of the ground truth "
                f"({_few(self.category_ids.tolist())}). Received unknown category_id(s): "
                f"{_few(unknown.tolist())}"
            )


def _field(items: list, key: str, what: str, default: Any = None) -> list:
    try:
        if default is None:
            return [item[key] for item in items]
        return [item.get(key, default) for item in items]
    except KeyError:
        i = next(i for i, item in enumerate(items) if key not in item)
        raise MetricError(
            f"Expected every {what} to have a {key!r} field. Received {what} #{i} without it: "
            f"{items[i]!r}"
        ) from None
    except (TypeError, AttributeError):
        i = next(i for i, item in enumerate(items) if not isinstance(item, Mapping))
        raise MetricError(
            f"Expected every {what} to be a dict. Received {what} #{i}: {items[i]!r}"
        ) from None


def _boxes_array(boxes: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 4:
        if isinstance(boxes, list):
            for i, b in enumerate(boxes):
                if not isinstance(b, (list, tuple, np.ndarray)) or len(b) != 4:
                    raise MetricError(
                        f"Expected each {what} bbox to be 4 numbers [x, y, w, h]. "
                        f"Received {what} #{i}: bbox={b!r}"
                    )
        shape = getattr(arr, "shape", None)
        raise MetricError(f"Expected {what} boxes of shape (N, 4). Received shape {shape}")
    return arr


def _check_boxes(boxes: np.ndarray, what: str) -> None:
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise MetricError(
            f"Expected finite {what} boxes. Received {int((~finite).sum())} with NaN or inf, "
            f"first {what} #{i}: {boxes[i].tolist()}"
        )
    neg = (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise MetricError(
            f"Expected {what} boxes [x, y, w, h] with w >= 0 and h >= 0. Received "
            f"{int(neg.sum())} with a negative width or height, first {what} #{i}: "
            f"{boxes[i].tolist()} (xyxy boxes need box_format='xyxy')"
        )


def load_ground_truth(
    ground_truth: str | os.PathLike | Mapping | CocoGroundTruth,
) -> CocoGroundTruth:
    """Read and validate a COCO instances file (path or dict) into a :class:`CocoGroundTruth`.

    Validation is :func:`dlbench.data.coco_format.validate_instances` (the one COCO format
    validator, shared with the dataset and the data check), with ``iscrowd`` defaulting to 0,
    ``area`` to ``w * h`` and image sizes optional.

    Args:
        ground_truth: A path to a COCO instances JSON file, the loaded dict, or an already
            parsed :class:`CocoGroundTruth` (returned as is).

    Raises:
        MetricError: the file is not a COCO instances file (a truncated or invalid JSON file
            included; the error is also a :class:`~dlbench.errors.DataError`), has no images
            or no categories, fields of the wrong type or value (string ids, ``iscrowd`` not
            0/1, NaN boxes), duplicate ids, annotations on unknown images or categories.

    Example:
        >>> gt = load_ground_truth({"images": [{"id": 1}], "categories": [{"id": 1}],
        ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
        ...                      "bbox": [0, 0, 10, 10]}]})
        >>> gt.ann_area.tolist()
        [100.0]
    """
    if isinstance(ground_truth, CocoGroundTruth):
        return ground_truth
    source = "ground truth"
    if isinstance(ground_truth, (str, os.PathLike)):
        source = str(ground_truth)
        ground_truth = read_json(ground_truth, "a COCO instances JSON file")
    if not isinstance(ground_truth, Mapping):
        raise MetricError(
            "Expected ground_truth to be a path or a dict in the COCO instances format. "
            f"Received: {type(ground_truth).__name__}"
        )
    inst = validate_instances(ground_truth, source, fields=GROUND_TRUTH_FIELDS)
    if not inst.image_ids.size:
        raise MetricError("Expected ground truth with at least one image. Received 'images': []")
    if not inst.category_ids.size:
        raise MetricError(
            "Expected ground truth with at least one category. Received 'categories': []"
        )
    inst.raise_problems()
    order = np.argsort(inst.image_ids, kind="stable")
    corder = np.argsort(inst.category_ids, kind="stable")
    return CocoGroundTruth(
        image_ids=inst.image_ids[order],
        widths=inst.widths[order].astype(np.float64),
        heights=inst.heights[order].astype(np.float64),
        category_ids=inst.category_ids[corder],
        category_names=[inst.category_names[i] for i in corder],
        ann_image=inst.ann_image,
        ann_category=inst.ann_category,
        ann_bbox=inst.ann_bbox,
        ann_area=inst.ann_area,
        ann_iscrowd=inst.ann_iscrowd,
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
    n = len(results)
    return CocoDetections(
        np.asarray(image_ids, np.int64).reshape(n),
        np.asarray(category_ids, np.int64).reshape(n),
        np.asarray(boxes, np.float64).reshape(n, 4),
        np.asarray(scores, np.float64).reshape(n),
    )


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


# --------------------------------------------------------------------------- engine inputs


def _bbox_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Row-wise IoU of detection and GT boxes, with pycocotools' ``bbIou`` arithmetic."""
    da = d[:, 2] * d[:, 3]
    ga = g[:, 2] * g[:, 3]
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w <= 0) | (h <= 0), 0.0, iou)


def _top_detections(dets: CocoDetections, gt: CocoGroundTruth, max_det: int) -> tuple:
    """Detections grouped by (image, category), each group in score order (stable), cut to max_det.

    Returns the permutation into ``dets`` plus the sorted group keys.
    """
    img_pos = gt.image_index(dets.image_id)
    cat_pos = np.searchsorted(gt.category_ids, dets.category_id)
    key = img_pos.astype(np.int64) * gt.category_ids.size + cat_pos
    # Stable: within a group, equal scores keep their input order, as in pycocotools.
    order = np.lexsort((-dets.score, key))
    key_sorted = key[order]
    starts = (
        np.r_[0, np.flatnonzero(key_sorted[1:] != key_sorted[:-1]) + 1]
        if key.size
        else np.zeros(0, int)
    )
    rank = np.arange(key.size) - np.repeat(starts, np.diff(np.r_[starts, key.size]))
    keep = rank < max_det
    return order[keep], key_sorted[keep], rank[keep]


def _params(engine_module: Any, gt: CocoGroundTruth, max_dets: Sequence[int]) -> Any:
    p = engine_module.Params(iouType="bbox")
    p.imgIds = gt.image_ids.tolist()
    p.catIds = gt.category_ids.tolist()
    p.maxDets = list(max_dets)
    p.areaRng = [list(r) for r in AREA_RANGES]
    p.areaRngLbl = list(AREA_LABELS)
    return p


def _run_faster(gt: CocoGroundTruth, dets: CocoDetections, max_dets: Sequence[int]) -> dict:
    import faster_coco_eval.core.cocoeval as fce_eval
    import faster_coco_eval.faster_eval_api_cpp as fce_cpp
    from faster_coco_eval import COCOeval_faster

    K = gt.category_ids.size
    I = gt.num_images  # noqa: E741
    order, dkey, _ = _top_detections(dets, gt, max(max_dets))
    d_box = dets.bbox[order]
    d_score = dets.score[order]
    d_area = d_box[:, 2] * d_box[:, 3]
    # GT grouped by (image, category), file order kept inside a group.
    g_img = gt.image_index(gt.ann_image, "annotations")
    g_key = g_img.astype(np.int64) * K + np.searchsorted(gt.category_ids, gt.ann_category)
    g_order = np.argsort(g_key, kind="stable")
    g_key = g_key[g_order]
    g_box = gt.ann_bbox[g_order]
    g_crowd = gt.ann_iscrowd[g_order]

    # The engine keeps references to one small dict per annotation; it reads only these keys.
    gt_ds, dt_ds = fce_cpp.Dataset(), fce_cpp.Dataset()
    g_dicts = [
        {"id": aid, "area": a, "iscrowd": cr, "ignore": cr}
        for aid, a, cr in zip(
            range(1, g_key.size + 1), gt.ann_area[g_order].tolist(), g_crowd.tolist()
        )
    ]
    _consume(
        map(
            gt_ds.append_ref,
            gt.image_ids[g_key // K].tolist(),
            gt.category_ids[g_key % K].tolist(),
            g_dicts,
        )
    )
    d_dicts = [
        {"id": aid, "score": s, "area": a}
        for aid, s, a in zip(range(1, dkey.size + 1), d_score.tolist(), d_area.tolist())
    ]
    _consume(
        map(
            dt_ds.append_ref,
            gt.image_ids[dkey // K].tolist(),
            gt.category_ids[dkey % K].tolist(),
            d_dicts,
        )
    )

    # IoU for every (image, category) group holding both GT and detections, in one pass.
    ious: list = [[[]] * K for _ in range(I)]
    both = np.intersect1d(g_key, dkey, assume_unique=False)
    if both.size:
        g_lo, g_hi = np.searchsorted(g_key, both), np.searchsorted(g_key, both, "right")
        d_lo, d_hi = np.searchsorted(dkey, both), np.searchsorted(dkey, both, "right")
        ng, nd = g_hi - g_lo, d_hi - d_lo
        sizes = ng * nd
        grp = np.repeat(np.arange(both.size), sizes)
        offs = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        di = d_lo[grp] + offs // ng[grp]
        gi = g_lo[grp] + offs % ng[grp]
        flat = _bbox_iou(d_box[di], g_box[gi], g_crowd[gi])
        # Nested lists: the engine reads them far faster than ndarrays.
        flat_l = flat.tolist()
        pos = 0
        for key, a, b in zip(both.tolist(), ng.tolist(), nd.tolist()):
            ious[key // K][key % K] = [flat_l[pos + r * a : pos + (r + 1) * a] for r in range(b)]
            pos += a * b

    ev = COCOeval_faster(None, None, "bbox", print_function=_quiet)
    ev.params = _params(fce_eval, gt, max_dets)
    ev._paramsEval = ev.params
    ev.eval = fce_cpp.COCOevalEvaluateAccumulate(
        ev.params, ious, gt_ds, dt_ds, ev.params.imgIds, ev.params.catIds, True
    )
    return {k: ev.eval[k] for k in ("precision", "recall", "scores")}


def _quiet(*args: Any, **kwargs: Any) -> None:
    pass


def _consume(iterator: Any) -> None:
    deque(iterator, maxlen=0)


def _run_pycocotools(gt: CocoGroundTruth, dets: CocoDetections, max_dets: Sequence[int]) -> dict:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i} for i in gt.image_ids.tolist()]
    cats = [{"id": c} for c in gt.category_ids.tolist()]
    anns = [
        {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": int(cr)}
        for k, (i, c, b, a, cr) in enumerate(
            zip(
                gt.ann_image.tolist(),
                gt.ann_category.tolist(),
                gt.ann_bbox.tolist(),
                gt.ann_area.tolist(),
                gt.ann_iscrowd.tolist(),
            )
        )
    ]
    order, _, _ = _top_detections(dets, gt, max(max_dets))
    order = np.sort(order)  # input order, so ties resolve as the user's list would
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_gt.createIndex()
        coco_dt = COCO()
        coco_dt.dataset = {
            "images": images,
            "categories": cats,
            "annotations": [
                {
                    "id": k + 1,
                    "image_id": i,
                    "category_id": c,
                    "bbox": b,
                    "score": s,
                    "area": b[2] * b[3],
                    "iscrowd": 0,
                }
                for k, (i, c, b, s) in enumerate(
                    zip(
                        dets.image_id[order].tolist(),
                        dets.category_id[order].tolist(),
                        dets.bbox[order].tolist(),
                        dets.score[order].tolist(),
                    )
                )
            ],
        }
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return {k: ev.eval[k] for k in ("precision", "recall", "scores")}


# --------------------------------------------------------------------------- summary


def _mean_defined(s: np.ndarray) -> float:
    s = s[s > -1]
    return float(np.mean(s)) if s.size else -1.0


def _summarize(ev: dict, max_dets: Sequence[int], gt: CocoGroundTruth, curves: bool) -> dict:
    prec, rec = np.asarray(ev["precision"]), np.asarray(ev["recall"])
    m = len(max_dets) - 1  # AP and per-size numbers at the largest max_dets, as pycocotools
    out: dict[str, Any] = {
        "AP": _mean_defined(prec[:, :, :, 0, m]),
        "AP50": _mean_defined(prec[0, :, :, 0, m]),
        "AP75": _mean_defined(prec[5, :, :, 0, m]),
        "APs": _mean_defined(prec[:, :, :, 1, m]),
        "APm": _mean_defined(prec[:, :, :, 2, m]),
        "APl": _mean_defined(prec[:, :, :, 3, m]),
    }
    for j, md in enumerate(max_dets):
        out[f"AR{md}"] = _mean_defined(rec[:, :, 0, j])
    out["ARs"] = _mean_defined(rec[:, :, 1, m])
    out["ARm"] = _mean_defined(rec[:, :, 2, m])
    out["ARl"] = _mean_defined(rec[:, :, 3, m])
    num_gt = np.bincount(
        np.searchsorted(gt.category_ids, gt.ann_category[~gt.ann_iscrowd]),
        minlength=gt.category_ids.size,
    )
    per_cat = {}
    for k, (cid, name) in enumerate(zip(gt.category_ids.tolist(), gt.category_names)):
        per_cat[cid] = {
            "name": name,
            "num_gt": int(num_gt[k]),
            "AP": _mean_defined(prec[:, :, k, 0, m]),
            "AP50": _mean_defined(prec[0, :, k, 0, m]),
            "AP75": _mean_defined(prec[5, :, k, 0, m]),
            "APs": _mean_defined(prec[:, :, k, 1, m]),
            "APm": _mean_defined(prec[:, :, k, 2, m]),
            "APl": _mean_defined(prec[:, :, k, 3, m]),
            f"AR{max_dets[-1]}": _mean_defined(rec[:, k, 0, m]),
        }
    out["per_category"] = per_cat
    if curves:
        out["curves"] = {
            "iou_thresholds": np.linspace(0.5, 0.95, 10),
            "recall_thresholds": np.linspace(0.0, 1.0, 101),
            "category_ids": gt.category_ids.copy(),
            "area_ranges": list(AREA_LABELS),
            "max_dets": list(max_dets),
            "precision": prec,  # [T, R, K, A, M], -1 where undefined
            "recall": rec,  # [T, K, A, M]
            "scores": np.asarray(ev["scores"]),  # [T, R, K, A, M]
        }
    return out


def coco_evaluate(
    ground_truth: str | os.PathLike | Mapping | CocoGroundTruth,
    detections: Any,
    iou_type: str = "bbox",
    *,
    engine: str = "faster_coco_eval",
    max_dets: Sequence[int] = (1, 10, 100),
    box_format: str = "xywh",
    normalized: bool = False,
    label_map: Any = None,
    curves: bool = True,
) -> dict[str, Any]:
    """Evaluate detections against COCO ground truth, as pycocotools' ``COCOeval`` does.

    Args:
        ground_truth: A COCO instances file: path, dict, or :class:`CocoGroundTruth` (parse
            once with :func:`load_ground_truth` to evaluate many times).
        detections: A COCO results path or list (``image_id``, ``category_id``, ``bbox``
            ``[x, y, w, h]``, ``score``), a dict of flat arrays (``image_id``,
            ``boxes``/``bbox``, ``scores``/``score``, ``labels``/``category_id``) or
            :class:`CocoDetections`. May be empty: a model that found nothing scores 0.
        iou_type: Only ``"bbox"`` is supported.
        engine: ``"faster_coco_eval"`` (default, C++) or ``"pycocotools"``.
        max_dets: Detection limits per image and category; AP and per-size numbers use the
            largest, and recall is reported as ``AR<m>`` for each.
        box_format: Format of array boxes: ``"xywh"``, ``"xyxy"``, ``"yxyx"``, ``"cxcywh"``.
        normalized: Array boxes are fractions of the image size.
        label_map: Maps model class indices to category ids (see :func:`detections_from_arrays`).
        curves: Also return the precision/recall arrays for plotting.

    Returns:
        A dict with the twelve COCO numbers (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``,
        ``APl``, ``AR1``, ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl``; -1 where undefined,
        as in pycocotools), ``per_category`` (category id -> name, number of non-crowd GT
        boxes, AP, AP50, AP75, APs/APm/APl, AR100) and, with ``curves``, ``curves``.

    Raises:
        MetricError: malformed ground truth or detections, unknown ids, NaN scores.

    Example:
        >>> gt = {"images": [{"id": 1}], "categories": [{"id": 7, "name": "cat"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 7,
        ...                        "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0}]}
        >>> dt = [{"image_id": 1, "category_id": 7, "bbox": [10, 10, 50, 50], "score": 0.9}]
        >>> coco_evaluate(gt, dt)["AP"]
        1.0
    """
    if iou_type != "bbox":
        raise MetricError(
            f"Expected iou_type='bbox' (the only one supported). Received: {iou_type!r}"
        )
    if engine not in ENGINES:
        raise MetricError(f"Expected engine in {ENGINES}. Received: engine={engine!r}")
    md = [int(m) for m in max_dets]
    if not md or any(m < 1 for m in md) or md != sorted(set(md)):
        raise MetricError(
            f"Expected max_dets as increasing positive ints. Received: {tuple(max_dets)}"
        )
    gt = load_ground_truth(ground_truth)
    if gt.ann_image.size == 0:
        raise MetricError(
            "Expected ground truth with at least one annotation. Received 'annotations': [] "
            "(nothing to evaluate against)"
        )
    dets = as_detections(
        detections, gt, box_format=box_format, normalized=normalized, label_map=label_map
    )
    if len(dets) == 0:
        warnings.warn(
            "coco_evaluate() received no detections; every AP and AR is 0.",
            UserWarning,
            stacklevel=2,
        )
    runner = _run_faster if engine == "faster_coco_eval" else _run_pycocotools
    ev = runner(gt, dets, md)
    return _summarize(ev, md, gt, curves)
