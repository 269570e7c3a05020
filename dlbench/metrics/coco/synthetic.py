"""Generated COCO ground truth and detections, for tests and the evaluation-speed benchmark.

The data is random but shaped like a real detector's output: boxes in all three COCO area
ranges, crowd regions, images without ground truth, categories without detections, detections
that are near copies of ground-truth boxes (so AP is neither 0 nor 1) and duplicate scores.

Example:
    >>> gt, dt = make_coco_set(num_images=3, seed=0)
    >>> sorted(gt) == ["annotations", "categories", "images", "info"]
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np


def make_coco_set(
    num_images: int = 50,
    *,
    num_categories: int = 8,
    gt_per_image: float = 7.0,
    dt_per_image: int = 30,
    crowd_fraction: float = 0.05,
    empty_image_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO instances dict and a COCO results list drawn at random.

    Args:
        num_images: How many images.
        num_categories: How many categories; the last one never receives a detection.
        gt_per_image: Mean number of ground-truth boxes per image (Poisson).
        dt_per_image: Detections per image (exactly; may exceed 100).
        crowd_fraction: Share of ground-truth boxes marked ``iscrowd=1``.
        empty_image_fraction: Share of images without any ground truth.
        seed: Seed of the generator.

    Returns:
        ``(ground_truth, detections)``: plain JSON-compatible Python objects.
    """
    rng = np.random.default_rng(seed)
    # COCO-like sparse category ids.
    cat_ids = np.arange(1, num_categories + 1) * 3 - 1
    images = []
    anns = []
    dets_img, dets_cat, dets_box, dets_score = [], [], [], []
    ann_id = 1
    for i in range(num_images):
        img_id = int(i * 2 + 1)
        width, height = int(rng.integers(200, 800)), int(rng.integers(200, 800))
        images.append(
            {"id": img_id, "width": width, "height": height, "file_name": f"{img_id}.jpg"}
        )
        n_gt = 0 if rng.random() < empty_image_fraction else int(rng.poisson(gt_per_image))
        # Sizes spread over small (<32^2), medium and large (>96^2) areas.
        side = np.exp(rng.uniform(np.log(4), np.log(min(width, height) * 0.9), size=(n_gt, 2)))
        w, h = side[:, 0], side[:, 1]
        x = rng.uniform(0, width - w)
        y = rng.uniform(0, height - h)
        gcat = rng.choice(cat_ids, size=n_gt)
        crowd = rng.random(n_gt) < crowd_fraction
        gboxes = np.stack([x, y, w, h], axis=1) if n_gt else np.zeros((0, 4))
        for k in range(n_gt):
            bx = [round(float(v), 2) for v in gboxes[k]]
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": int(gcat[k]),
                    "bbox": bx,
                    # Area from the box with some noise, as a mask area would differ.
                    "area": float(bx[2] * bx[3] * rng.uniform(0.8, 1.0)),
                    "iscrowd": int(crowd[k]),
                    "segmentation": [],
                }
            )
            ann_id += 1
        # Detections: jittered copies of GT boxes plus random boxes.
        n_dt = dt_per_image
        n_copy = min(n_gt * 2, n_dt // 2) if n_gt else 0
        src = rng.integers(0, max(n_gt, 1), size=n_copy)
        jit = rng.normal(0, 0.08, size=(n_copy, 4))
        cb = gboxes[src] if n_gt else np.zeros((0, 4))
        copies = np.stack(
            [
                cb[:, 0] + jit[:, 0] * cb[:, 2],
                cb[:, 1] + jit[:, 1] * cb[:, 3],
                cb[:, 2] * np.exp(jit[:, 2]),
                cb[:, 3] * np.exp(jit[:, 3]),
            ],
            axis=1,
        )
        ccat = gcat[src] if n_gt else np.zeros(0, int)
        # Some copies get the wrong category.
        wrong = rng.random(n_copy) < 0.1
        ccat = np.where(wrong, rng.choice(cat_ids[:-1], size=n_copy), ccat)
        n_rand = n_dt - n_copy
        rs = np.exp(rng.uniform(np.log(4), np.log(min(width, height) * 0.9), size=(n_rand, 2)))
        rb = np.stack(
            [
                rng.uniform(0, width - rs[:, 0]),
                rng.uniform(0, height - rs[:, 1]),
                rs[:, 0],
                rs[:, 1],
            ],
            axis=1,
        )
        rcat = rng.choice(cat_ids[:-1], size=n_rand)
        box = np.concatenate([copies, rb])
        cat = np.concatenate([ccat, rcat])
        score = np.concatenate([rng.uniform(0.3, 1.0, n_copy), rng.uniform(0.0, 0.7, n_rand)])
        # Duplicate scores: quantise a share of them.
        dup = rng.random(n_dt) < 0.3
        score = np.where(dup, np.round(score, 1), score)
        dets_img.append(np.full(n_dt, img_id))
        dets_cat.append(cat)
        dets_box.append(box)
        dets_score.append(score)
    gt = {
        "info": {"description": "dlbench generated COCO set"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": int(c), "name": f"class{c}", "supercategory": "x"} for c in cat_ids],
    }
    img = np.concatenate(dets_img) if dets_img else np.zeros(0, int)
    cat = np.concatenate(dets_cat) if dets_cat else np.zeros(0, int)
    box = np.round(np.concatenate(dets_box), 2) if dets_box else np.zeros((0, 4))
    score = np.round(np.concatenate(dets_score), 4) if dets_score else np.zeros(0)
    dets = [
        {"image_id": int(i), "category_id": int(c), "bbox": b, "score": float(s)}
        for i, c, b, s in zip(img.tolist(), cat.tolist(), box.tolist(), score.tolist())
    ]
    return gt, dets
