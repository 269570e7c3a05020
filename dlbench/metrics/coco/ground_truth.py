"""COCO ground truth as validated arrays (:class:`CocoGroundTruth`), parsed once and reusable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.data.coco_format import (
    GROUND_TRUTH_FIELDS,
    is_int,
    read_json,
    validate_instances,
)
from dlbench.errors import MetricError

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
