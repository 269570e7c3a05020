"""The secondary COCO numbers against pycocotools: every per-category figure (AP50, AP75, the
per-size APs, AR100, the ground-truth count) and the curves' metadata, not only the headline AP."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import metrics as M

pytest.importorskip("pycocotools")
pytest.importorskip("faster_coco_eval")

from tests.metrics.test_coco import TOL, hard_set, oracle  # noqa: E402


def _mean_defined(s: np.ndarray) -> float:
    s = np.asarray(s).ravel()
    return float(s[s > -1].mean()) if (s > -1).any() else -1.0


@pytest.fixture(scope="module")
def evaluated():
    gt, dt = hard_set(4)
    return gt, M.coco_evaluate(gt, dt), oracle(gt, dt)


def test_per_category_figures_match_pycocotools_arrays(evaluated) -> None:
    gt, res, ev = evaluated
    prec, rec = ev.eval["precision"], ev.eval["recall"]  # [T, R, K, A, M], [T, K, A, M]
    assert ev.params.catIds == sorted(res["per_category"])
    for k, cid in enumerate(ev.params.catIds):
        got = res["per_category"][cid]
        want = {
            "AP": _mean_defined(prec[:, :, k, 0, -1]),
            "AP50": _mean_defined(prec[0, :, k, 0, -1]),
            "AP75": _mean_defined(prec[5, :, k, 0, -1]),
            "APs": _mean_defined(prec[:, :, k, 1, -1]),
            "APm": _mean_defined(prec[:, :, k, 2, -1]),
            "APl": _mean_defined(prec[:, :, k, 3, -1]),
            "AR100": _mean_defined(rec[:, k, 0, -1]),
        }
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=TOL), (cid, key)
        name = next(c["name"] for c in gt["categories"] if c["id"] == cid)
        non_crowd = sum(
            1 for a in gt["annotations"] if a["category_id"] == cid and not a["iscrowd"]
        )
        assert got["name"] == name and got["num_gt"] == non_crowd, cid
    assert any(a["iscrowd"] for a in gt["annotations"])  # the count above had crowds to skip
    # the figures differ from each other, so a swapped key cannot pass by coincidence
    some = res["per_category"][ev.params.catIds[0]]
    assert len({some["AP50"], some["AP75"], some["AR100"], some["AP"]}) == 4


def test_one_category_alone_matches_pycocotools_summary(evaluated) -> None:
    """pycocotools restricted to one category (params.catIds) prints that category's AP50
    and AR100 as its summary stats[1] and stats[8]."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, res, _ = evaluated
    _, dt = hard_set(4)
    cid = sorted(res["per_category"])[1]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dt)), "bbox")
        ev.params.catIds = [cid]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    got = res["per_category"][cid]
    assert got["AP"] == pytest.approx(ev.stats[0], abs=TOL)
    assert got["AP50"] == pytest.approx(ev.stats[1], abs=TOL)
    assert got["AP75"] == pytest.approx(ev.stats[2], abs=TOL)
    assert got["AR100"] == pytest.approx(ev.stats[8], abs=TOL)


def test_curve_metadata_matches_pycocotools_params(evaluated) -> None:
    _, res, ev = evaluated
    curves = res["curves"]
    np.testing.assert_allclose(curves["iou_thresholds"], ev.params.iouThrs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curves["recall_thresholds"], ev.params.recThrs, rtol=0, atol=1e-15)
    assert list(curves["category_ids"]) == list(ev.params.catIds)
    assert list(curves["area_ranges"]) == list(ev.params.areaRngLbl)
    assert list(curves["max_dets"]) == list(ev.params.maxDets)
    assert curves["precision"].shape == ev.eval["precision"].shape
    np.testing.assert_allclose(curves["scores"], ev.eval["scores"], rtol=0, atol=TOL)
