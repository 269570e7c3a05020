"""Kept detections -> COCO results in original image pixels (the input of ``coco_evaluate``).

Example:
    >>> import numpy as np
    >>> from dlbench.detection import Detections
    >>> d = Detections(np.array([[10.0, 20, 30, 60]]), np.array([0.9]), np.array([1]))
    >>> r = to_coco_results([d], [{"image_id": 7, "scale": 0.5, "pad_x": 0, "pad_y": 10}])
    >>> r["image_id"].tolist(), r["bbox"].tolist(), r["category_id"].tolist()
    ([7], [[20.0, 20.0, 40.0, 80.0]], [1])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dlbench.detection.letterbox import LetterboxParams, unletterbox_boxes
from dlbench.detection.nms import Detections
from dlbench.errors import DataError

__all__ = ["to_coco_results"]


def to_coco_results(
    detections: Sequence[Detections],
    targets: Sequence[Mapping[str, Any]],
    label_to_category_id: Callable[[np.ndarray], np.ndarray] | None = None,
    params: Sequence[LetterboxParams] | None = None,
) -> dict[str, np.ndarray]:
    """Flat COCO result arrays for a batch: ``image_id``, ``bbox`` (xywh, original pixels),
    ``score``, ``category_id``.

    Args:
        detections: One :class:`Detections` per image, boxes xyxy in model-input pixels.
        targets: The dataset's per-image targets (``image_id`` and the letterbox ``scale``,
            ``pad_x``, ``pad_y``, ``orig_width``, ``orig_height``, as the COCO adapter writes).
        label_to_category_id: Maps contiguous labels to category ids (e.g. the dataset's
            ``label_to_category_id``); None = labels are category ids.
        params: Letterbox parameters per image instead of the targets' own.

    Raises:
        DataError: when the numbers of detections and targets differ.
    """
    if len(detections) != len(targets):
        raise DataError(
            f"Expected one Detections per image ({len(targets)}). Received {len(detections)}"
        )
    ids, boxes, scores, cats = [], [], [], []
    for k, (det, tgt) in enumerate(zip(detections, targets)):
        p = params[k] if params is not None else tgt
        xyxy = unletterbox_boxes(np.asarray(det.boxes, np.float64), p, clip=True)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        labels = np.asarray(det.labels, np.int64)
        cat = labels if label_to_category_id is None else np.asarray(label_to_category_id(labels))
        ids.append(np.full(len(det), int(tgt["image_id"]), np.int64))
        boxes.append(xywh)
        scores.append(np.asarray(det.scores, np.float64))
        cats.append(cat.astype(np.int64))
    if not ids:
        return {
            "image_id": np.zeros(0, np.int64),
            "bbox": np.zeros((0, 4)),
            "score": np.zeros(0),
            "category_id": np.zeros(0, np.int64),
        }
    return {
        "image_id": np.concatenate(ids),
        "bbox": np.concatenate(boxes).reshape(-1, 4),
        "score": np.concatenate(scores),
        "category_id": np.concatenate(cats),
    }
