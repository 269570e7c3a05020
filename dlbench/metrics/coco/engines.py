"""The evaluation engines' inputs and runs: faster-coco-eval (default) and pycocotools."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlbench.metrics.coco.detections import CocoDetections
from dlbench.metrics.coco.ground_truth import AREA_LABELS, AREA_RANGES, CocoGroundTruth

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
