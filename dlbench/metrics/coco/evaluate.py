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

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics.coco.detections import (
    CocoDetections,
    as_detections,
    convert_boxes,
    detections_from_arrays,
)
from dlbench.metrics.coco.engines import _run_faster, _run_pycocotools
from dlbench.metrics.coco.ground_truth import (
    AREA_LABELS,
    BOX_FORMATS,
    ENGINES,
    STAT_KEYS,
    CocoGroundTruth,
    load_ground_truth,
)

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
