"""Streaming COCO mAP: detections from any backend accumulate batch by batch.

Example:
    >>> import numpy as np
    >>> gt = {"images": [{"id": 1, "width": 100, "height": 100}],
    ...       "categories": [{"id": 3, "name": "car"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 3,
    ...                        "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}]}
    >>> m = CocoMeanAveragePrecision(gt, box_format="xyxy", label_map="sorted")
    >>> m.update([1], [{"boxes": np.array([[10, 10, 50, 50]]), "scores": np.array([0.9]),
    ...                 "labels": np.array([0])}])
    >>> m.compute()["AP"]
    1.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics.base import Metric
from dlbench.metrics.coco.evaluate import (
    CocoDetections,
    as_detections,
    coco_evaluate,
    detections_from_arrays,
    load_ground_truth,
)


class CocoMeanAveragePrecision(Metric):
    """COCO bbox AP/AR over every batch seen, computed by :func:`coco_evaluate`.

    Args:
        ground_truth: The COCO instances file (path or dict), parsed and validated once here.
        box_format: Format of the boxes passed to ``update``: ``"xywh"``, ``"xyxy"``,
            ``"yxyx"``, ``"cxcywh"``.
        normalized: Boxes are fractions of the image size (sizes from the ground truth).
        label_map: Maps model class indices to category ids: ``"sorted"``, a sequence, a
            dict, or None when labels already are category ids.
        engine: ``"faster_coco_eval"`` or ``"pycocotools"``.
        max_dets: As in :func:`coco_evaluate`.
        curves: Include the precision/recall arrays in ``compute()`` (not JSON-friendly).

    ``update(targets, preds)``:
        targets: The batch's image ids: a sequence of ints, or of dicts with ``"image_id"``.
        preds: One dict per image with ``"boxes"`` (M, 4), ``"scores"`` (M,), ``"labels"``
            (M,) (torchvision's output), or a COCO results list for the batch.
    """

    name = "coco_map"

    def __init__(
        self,
        ground_truth: str | os.PathLike | Mapping,
        *,
        box_format: str = "xywh",
        normalized: bool = False,
        label_map: Any = None,
        engine: str = "faster_coco_eval",
        max_dets: tuple[int, ...] = (1, 10, 100),
        curves: bool = False,
    ) -> None:
        super().__init__()
        self.ground_truth = load_ground_truth(ground_truth)
        self.box_format, self.normalized, self.label_map = box_format, normalized, label_map
        self.engine, self.max_dets, self.curves = engine, tuple(max_dets), curves
        self.add_state("detections", [], "cat")

    def update(self, targets: Any, preds: Any) -> None:
        gt = self.ground_truth
        opts = {
            "box_format": self.box_format,
            "normalized": self.normalized,
            "label_map": self.label_map,
        }
        if (
            isinstance(preds, list)
            and preds
            and isinstance(preds[0], Mapping)
            and "image_id" in preds[0]
        ):
            self.detections.append(as_detections(preds, gt, **opts))
            return
        ids = [
            t["image_id"] if isinstance(t, Mapping) else t
            for t in np.atleast_1d(np.asarray(targets, dtype=object)).tolist()
        ]
        if len(ids) != len(preds):
            raise MetricError(
                f"Expected one prediction per image. Received {len(ids)} image ids and {len(preds)} predictions"
            )
        parts = []
        for image_id, pred in zip(ids, preds):
            if not isinstance(pred, Mapping):
                raise MetricError(
                    f"Expected per-image dicts with 'boxes', 'scores', 'labels'. Received: {type(pred).__name__}"
                )
            missing = {"boxes", "scores", "labels"} - set(pred)
            if missing:
                raise MetricError(
                    f"Expected per-image dicts with 'boxes', 'scores', 'labels'. Missing {sorted(missing)} "
                    f"for image_id={image_id!r}"
                )
            parts.append(
                detections_from_arrays(
                    image_id, pred["boxes"], pred["scores"], pred["labels"], ground_truth=gt, **opts
                )
            )
        batch = CocoDetections.concatenate(parts)
        self.detections.append(as_detections(batch, gt))

    def compute(self) -> dict[str, Any]:
        dets = CocoDetections.concatenate(self.detections)
        return coco_evaluate(
            self.ground_truth, dets, engine=self.engine, max_dets=self.max_dets, curves=self.curves
        )
