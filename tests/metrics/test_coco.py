"""COCO evaluation against pycocotools (the oracle) on generated sets, and input validation."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from dlbench import metrics as M
from dlbench.errors import MetricError
from dlbench.metrics.coco.synthetic import make_coco_set

pycocotools = pytest.importorskip("pycocotools")
pytest.importorskip("faster_coco_eval")

TOL = 1e-12


def oracle(gt, dt, max_dets=(1, 10, 100)):
    """pycocotools' COCOeval on fresh copies (it mutates its inputs)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        if 100 in max_dets:
            ev.summarize()
    return ev


def per_category_ap(ev):
    p = ev.eval["precision"][:, :, :, 0, -1]
    out = []
    for k in range(p.shape[2]):
        s = p[:, :, k]
        out.append(np.mean(s[s > -1]) if (s > -1).any() else -1.0)
    return np.array(out)


def hard_set(seed):
    """Generated set plus the awkward cases: >100 detections of one category on one image
    (with duplicate scores), a category with detections but no ground truth, and an image
    without ground truth that still has detections."""
    gt, dt = make_coco_set(60, num_categories=6, dt_per_image=40, seed=seed)
    rng = np.random.default_rng(seed)
    gt["categories"].append({"id": 99, "name": "no-gt", "supercategory": "x"})
    img = next(a["image_id"] for a in gt["annotations"] if not a["iscrowd"])
    cat = next(a["category_id"] for a in gt["annotations"] if a["image_id"] == img)
    box = next(a["bbox"] for a in gt["annotations"] if a["image_id"] == img)
    for _ in range(130):
        jitter = rng.normal(0, 3, 4)
        dt.append(
            {
                "image_id": img,
                "category_id": cat,
                "bbox": [
                    box[0] + jitter[0],
                    box[1] + jitter[1],
                    abs(box[2] + jitter[2]),
                    abs(box[3] + jitter[3]),
                ],
                "score": round(float(rng.random()), 1),
            }
        )
    dt.append({"image_id": img, "category_id": 99, "bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.5})
    return gt, dt


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("engine", ["faster_coco_eval", "pycocotools"])
def test_matches_pycocotools(seed, engine):
    gt, dt = hard_set(seed)
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (
        (areas < 32**2).any()
        and ((areas > 32**2) & (areas < 96**2)).any()
        and (areas > 96**2).any()
    )
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert len({a["image_id"] for a in gt["annotations"]}) < len(gt["images"])
    ev = oracle(gt, dt)
    res = M.coco_evaluate(gt, dt, engine=engine)
    got = np.array([res[k] for k in M.STAT_KEYS])
    np.testing.assert_allclose(got, ev.stats, rtol=0, atol=TOL)
    ours_cat = np.array([res["per_category"][c]["AP"] for c in sorted(res["per_category"])])
    np.testing.assert_allclose(ours_cat, per_category_ap(ev), rtol=0, atol=TOL)
    assert res["per_category"][99]["AP"] == -1.0  # no ground truth: undefined, left out
    np.testing.assert_allclose(res["curves"]["precision"], ev.eval["precision"], rtol=0, atol=TOL)
    np.testing.assert_allclose(res["curves"]["recall"], ev.eval["recall"], rtol=0, atol=TOL)


def test_custom_max_dets_match_pycocotools_arrays():
    gt, dt = hard_set(3)
    ev = oracle(gt, dt, max_dets=(1, 5, 20))
    res = M.coco_evaluate(gt, dt, max_dets=(1, 5, 20))
    np.testing.assert_allclose(res["curves"]["precision"], ev.eval["precision"], rtol=0, atol=TOL)
    assert {"AR1", "AR5", "AR20"} <= res.keys()
    assert res["AP"] > -1


def test_inputs_from_paths_arrays_and_model_formats(tmp_path):
    gt, dt = make_coco_set(20, seed=4)
    expected = M.coco_evaluate(gt, dt)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    from_paths = M.coco_evaluate(tmp_path / "gt.json", str(tmp_path / "dt.json"))
    assert [from_paths[k] for k in M.STAT_KEYS] == [expected[k] for k in M.STAT_KEYS]

    img = np.array([d["image_id"] for d in dt])
    xywh = np.array([d["bbox"] for d in dt])
    score = np.array([d["score"] for d in dt])
    cats = np.array([d["category_id"] for d in dt])
    sorted_ids = sorted(c["id"] for c in gt["categories"])
    index = np.searchsorted(sorted_ids, cats)
    xyxy = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]
    res = M.coco_evaluate(
        gt,
        {"image_id": img, "boxes": xyxy, "scores": score, "labels": index},
        box_format="xyxy",
        label_map="sorted",
    )
    np.testing.assert_allclose(
        [res[k] for k in M.STAT_KEYS], [expected[k] for k in M.STAT_KEYS], atol=1e-9
    )

    size = {i["id"]: (i["width"], i["height"]) for i in gt["images"]}
    w = np.array([size[i][0] for i in img], float)
    h = np.array([size[i][1] for i in img], float)
    yxyx_norm = np.c_[xyxy[:, 1] / h, xyxy[:, 0] / w, xyxy[:, 3] / h, xyxy[:, 2] / w]
    res = M.coco_evaluate(
        gt,
        {"image_id": img, "boxes": yxyx_norm, "scores": score, "labels": cats},
        box_format="yxyx",
        normalized=True,
    )
    np.testing.assert_allclose(
        [res[k] for k in M.STAT_KEYS], [expected[k] for k in M.STAT_KEYS], atol=1e-6
    )


def test_convert_boxes():
    b = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_allclose(M.convert_boxes(b, "xyxy"), [[10, 20, 20, 40]])
    np.testing.assert_allclose(M.convert_boxes(b, "yxyx"), [[20, 10, 40, 20]])
    np.testing.assert_allclose(M.convert_boxes(b, "cxcywh"), [[-5, -10, 30, 60]])
    with pytest.raises(MetricError, match="box_format"):
        M.convert_boxes(b, "ltrb")


def test_streaming_metric_equals_one_shot_and_merges():
    gt, dt = make_coco_set(30, seed=5)
    expected = M.coco_evaluate(gt, dt, curves=False)
    by_image: dict = {}
    for d in dt:
        by_image.setdefault(d["image_id"], []).append(d)
    ids = [i["id"] for i in gt["images"]]
    a = M.CocoMeanAveragePrecision(gt, box_format="xyxy")
    b = M.CocoMeanAveragePrecision(gt, box_format="xyxy")
    for start in range(0, len(ids), 8):
        batch = ids[start : start + 8]
        preds = []
        for i in batch:
            ds = by_image.get(i, [])
            xywh = np.array([d["bbox"] for d in ds]).reshape(-1, 4)
            preds.append(
                {
                    "boxes": np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]],
                    "scores": np.array([d["score"] for d in ds]),
                    "labels": np.array([d["category_id"] for d in ds], int),
                }
            )
        (a if start % 16 else b).update([{"image_id": i} for i in batch], preds)
    a.merge(b)
    got = a.compute()
    np.testing.assert_allclose(
        [got[k] for k in M.STAT_KEYS], [expected[k] for k in M.STAT_KEYS], atol=1e-9
    )
    c = M.CocoMeanAveragePrecision(gt)
    c.update(None, dt)  # a COCO results list works too
    assert c.compute()["AP"] == expected["AP"]


def test_handled_pitfalls():
    gt, dt = make_coco_set(15, seed=6)
    expected = M.coco_evaluate(gt, dt)
    # Annotation id 0 would collide with "unmatched" in the reference tools; dlbench renumbers.
    gt0 = copy.deepcopy(gt)
    for a in gt0["annotations"]:
        a["id"] -= 1
    assert M.coco_evaluate(gt0, dt)["AP"] == expected["AP"]
    # Missing iscrowd -> 0, missing area -> w*h (pycocotools raises KeyError on both).
    gt1 = copy.deepcopy(gt)
    for a in gt1["annotations"]:
        del a["iscrowd"], a["area"]
    gt2 = copy.deepcopy(gt1)
    for a in gt2["annotations"]:
        a["iscrowd"] = 0
        a["area"] = a["bbox"][2] * a["bbox"][3]
    assert M.coco_evaluate(gt1, dt)["AP"] == oracle(gt2, dt).stats[0]
    # Inputs are not modified.
    before = copy.deepcopy(dt)
    M.coco_evaluate(gt, dt)
    assert dt == before
    # No detections: a model that found nothing (pycocotools' loadRes([]) raises).
    with pytest.warns(UserWarning, match="no detections"):
        empty = M.coco_evaluate(gt, [])
    assert empty["AP"] == 0.0 and empty["AR100"] == 0.0


def _gt():
    return {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 10, 10],
                "area": 100,
                "iscrowd": 0,
            }
        ],
    }


def _dt(**change):
    d = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5}
    d.update(change)
    return [d]


@pytest.mark.parametrize(
    ("gt_change", "dt", "match"),
    [
        (None, _dt(image_id=7), r"unknown image_id\(s\): 7"),
        (None, _dt(category_id=5), r"unknown category_id\(s\): 5"),
        (None, _dt(bbox=[0, 0, 10]), "4 numbers"),
        (None, _dt(bbox=[0, 0, -1, 10]), "negative width"),
        (None, _dt(bbox=[0, float("nan"), 1, 10]), "finite detection boxes"),
        (None, _dt(score=float("nan")), "finite detection scores"),
        (None, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}], "'score' field"),
        (
            None,
            {"image_id": [1], "boxes": [[0, 0, 1, 1]], "scores": [0.5, 0.1], "labels": [1]},
            "one box, score",
        ),
        (None, 42, "Expected detections"),
        ({"images": []}, _dt(), "at least one image"),
        ({"categories": []}, _dt(), "at least one category"),
        ({"annotations": []}, _dt(), "at least one annotation"),
        (
            {"annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]},
            _dt(),
            "unknown image_id",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}] * 2},
            _dt(),
            "unique annotation ids",
        ),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1}]}, _dt(), "'bbox' field"),
        ({"images": None}, _dt(), "to be a list"),
    ],
)
def test_bad_inputs_give_clear_errors(gt_change, dt, match):
    gt = _gt()
    if gt_change:
        gt.update(gt_change)
    with pytest.raises(MetricError, match=match):
        M.coco_evaluate(gt, dt)


def test_bad_options_and_paths(tmp_path):
    with pytest.raises(MetricError, match="iou_type"):
        M.coco_evaluate(_gt(), _dt(), iou_type="segm")
    with pytest.raises(MetricError, match="engine"):
        M.coco_evaluate(_gt(), _dt(), engine="torchmetrics")
    with pytest.raises(MetricError, match="max_dets"):
        M.coco_evaluate(_gt(), _dt(), max_dets=(10, 1))
    with pytest.raises(MetricError, match="missing path"):
        M.coco_evaluate(tmp_path / "nope.json", _dt())
    with pytest.raises(MetricError, match="label_map"):
        M.coco_evaluate(
            _gt(),
            {"image_id": [1], "boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [3]},
            label_map="sorted",
        )


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("image_id", True, r"`image_id` to be an int.*detection #3"),
        ("image_id", 1.0, r"`image_id` to be an int.*detection #3"),
        ("category_id", "2", r"`category_id` to be an int.*detection #3"),
        ("image_id", 10**30, r"`image_id` within int64 range.*detection #3"),
        ("score", "0.5", r"numeric score.*detection #3"),
        ("score", None, r"numeric score.*detection #3"),
        ("score", 10**400, r"numeric score.*detection #3"),
        ("score", np.bool_(True), r"numeric score.*detection #3"),
        ("bbox", [1, 2, 3], r"bbox to be 4 numbers.*detection #3"),
        ("bbox", [1, 2, "3", 4], r"bbox to be 4 numbers.*detection #3"),
        ("bbox", "1234", r"bbox to be 4 numbers.*detection #3"),
        ("bbox", np.array([1.0, 2, 3, 4]), r"bbox to be 4 numbers.*detection #3"),
    ],
)
def test_results_list_types_checked_per_detection(key, value, match) -> None:
    """Whole columns are type-checked at once; a bad value is still named with its index."""
    gt, dt = make_coco_set(6, num_categories=3, dt_per_image=4, seed=11)
    dt[3][key] = value
    with pytest.raises(MetricError, match=match):
        M.coco_evaluate(gt, dt)


def test_results_list_numpy_scalars_equal_python_numbers() -> None:
    gt, dt = make_coco_set(12, num_categories=4, dt_per_image=9, seed=12)
    as_numpy = [
        {
            "image_id": np.int32(d["image_id"]),
            "category_id": np.uint16(d["category_id"]),
            "bbox": tuple(np.float32(v) if i % 2 else int(v) for i, v in enumerate(d["bbox"])),
            "score": np.float16(d["score"]),
        }
        for d in dt
    ]
    plain = [
        {**d, "bbox": [float(x) for x in b["bbox"]], "score": float(b["score"])}
        for d, b in zip(dt, as_numpy, strict=True)
    ]
    a, b = M.coco_evaluate(gt, as_numpy), M.coco_evaluate(gt, plain)
    assert [a[k] for k in M.STAT_KEYS] == [b[k] for k in M.STAT_KEYS]
