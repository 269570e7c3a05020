"""The COCO part of the data check: the instances file through the one validator, boxes against
images, empty images, category use."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.data.check import (
    _MAX_EXAMPLES,
    BOX_TOLERANCE,
    Report,
    _check_duplicates,
    _decoded_size,
)
from dlbench.data.coco_format import CocoInstances, validate_instances


def check_coco(report: Report, split: str, ds: Any, *, full: bool) -> list[Any]:
    paths = [ds.image_path(i) for i in range(len(ds))]
    hashes: list[Any] = []
    for p in paths:
        try:
            hashes.append(hashlib.blake2b(Path(p).read_bytes(), digest_size=16).digest())
        except OSError:
            hashes.append(None)
    if not full:
        return hashes
    inst: CocoInstances
    if hasattr(ds, "coco_instances"):
        inst = ds.coco_instances()
        if len(inst.image_ids) != len(ds):  # a limit: check only what the dataset holds
            inst = validate_instances(ds.coco_ground_truth(), inst.source)
    else:
        inst = validate_instances(ds.coco_ground_truth(), ds.info.source)
    st: dict[str, Any] = {
        "samples": len(ds),
        "classes": len(set(inst.category_ids.tolist())),
        "annotations": int(inst.ann_ids.size),
    }

    def add(level: str, check: str, items: list[Any], what: str) -> None:
        if items:
            report.add(
                level,
                check,
                f"{len(items)} {what}, e.g. {items[0]}",
                split=split,
                count=len(items),
                examples=items[:_MAX_EXAMPLES],
            )

    add(
        "error",
        "ids",
        [i for i in inst.ann_ids.tolist() if i <= 0],
        "annotation id(s) <= 0 (pycocotools treats id 0 as unmatched)",
    )
    for problem in inst.problems:
        add("error", problem.check, problem.examples, problem.what)

    # Box checks for annotations of known images (those of unknown images are reported above).
    pos = np.searchsorted(np.sort(inst.image_ids), inst.ann_image)
    order = np.argsort(inst.image_ids, kind="stable")
    pos = np.minimum(pos, max(inst.image_ids.size - 1, 0))
    known = (
        inst.image_ids[order][pos] == inst.ann_image
        if inst.image_ids.size
        else np.zeros(inst.ann_image.size, bool)
    )
    W = inst.widths[order][pos].astype(np.float64)
    H = inst.heights[order][pos].astype(np.float64)
    x, y, w, h = inst.ann_bbox.T
    t = BOX_TOLERANCE
    is_zero = known & ~((w > 0) & (h > 0))
    is_outside = known & ((x < -t) | (y < -t) | (x + w > W + t) | (y + h > H + t))
    zero = [
        {"annotation_id": int(inst.ann_ids[i]), "bbox": inst.ann_bbox[i].tolist()}
        for i in np.flatnonzero(is_zero)
    ]
    outside = [
        {
            "annotation_id": int(inst.ann_ids[i]),
            "bbox": inst.ann_bbox[i].tolist(),
            "image": [float(W[i]), float(H[i])],
        }
        for i in np.flatnonzero(is_outside)
    ]
    add("error", "boxes", outside, "box(es) outside their image")
    add("error", "boxes", zero, "box(es) with zero or negative width/height")
    with_ann = set(inst.ann_image[known].tolist())
    no_ann = [i for i in inst.image_ids.tolist() if i not in with_ann]
    add("info", "images", no_ann, "image(s) without annotations")
    cat_known = np.isin(inst.ann_category, inst.category_ids)
    counted = inst.ann_category[known & cat_known]

    missing, corrupt, size_mismatch = [], [], []
    for i, p in enumerate(paths):
        if hashes[i] is None:
            missing.append(str(p))
            continue
        size = _decoded_size(p)
        if size is None:
            corrupt.append(str(p))
            continue
        rec = ds.image_record(i)
        if size != (int(rec["width"]), int(rec["height"])):
            size_mismatch.append(
                {"file": str(p), "json": [rec["width"], rec["height"]], "file_size": list(size)}
            )
    add("error", "missing files", missing, "missing image file(s)")
    add(
        "error",
        "corrupt files",
        corrupt,
        "image file(s) that do not decode (or exceed the loaders' pixel limit)",
    )
    add("error", "image size", size_mismatch, "image(s) whose size differs from the JSON")
    _check_duplicates(report, split, hashes, None)

    names = dict(zip(inst.category_ids.tolist(), inst.category_names))
    uniq, num = np.unique(counted, return_counts=True)
    per_cat = dict(zip(uniq.tolist(), num.tolist()))
    counts = {names[c]: int(per_cat.get(c, 0)) for c in sorted(names)}
    st["class_counts"] = counts
    if counts:
        lo, hi = min(counts.values()), max(counts.values())
        st.update(
            min_class_count=lo, max_class_count=hi, imbalance_ratio=(hi / lo if lo else math.inf)
        )
    st["images_without_annotations"] = len(no_ann)
    report.stats[split] = st
    return hashes
