"""Time dlbench's ``coco_evaluate`` against pycocotools, end to end, on a generated COCO set.

Both start from the same in-memory ground truth (a COCO instances dict) and detections (a COCO
results list) and end with the twelve summary numbers. pycocotools' time is its load (index the
ground truth, ``loadRes``) + ``evaluate`` + ``accumulate`` + ``summarize``; dlbench's time is one
``coco_evaluate`` call, so it includes dlbench's own loading, validation and conversion. The
inputs are deep-copied before each pycocotools run (it modifies them); the copy is not timed.

Also timed: ``coco_evaluate`` fed the flat arrays a detection model produces (no per-detection
dicts), and faster-coco-eval used directly through its pycocotools-style API.

Usage:
    python benchmarks/coco_eval_speed.py                      # 5,000 images, 100 dets each
    python benchmarks/coco_eval_speed.py --images 500 --repeat 3
    python benchmarks/coco_eval_speed.py --json results.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import statistics
import time
from typing import Any

import numpy as np

from dlbench.metrics import STAT_KEYS, coco_evaluate
from dlbench.metrics.coco.synthetic import make_coco_set


def time_pycocotools(gt: dict, dt: list) -> tuple[dict[str, float], np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = copy.deepcopy(gt), copy.deepcopy(dt)
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt)
        t1 = time.perf_counter()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        t2 = time.perf_counter()
        ev.accumulate()
        t3 = time.perf_counter()
        ev.summarize()
        t4 = time.perf_counter()
    out.update(load=t1 - t0, evaluate=t2 - t1, accumulate=t3 - t2, summarize=t4 - t3, total=t4 - t0)
    return out, np.asarray(ev.stats)


def time_faster_coco_eval_direct(gt: dict, dt: list) -> tuple[float, np.ndarray]:
    from faster_coco_eval import COCO, COCOeval_faster

    gt, dt = copy.deepcopy(gt), copy.deepcopy(dt)
    t0 = time.perf_counter()
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(dt)
    ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return time.perf_counter() - t0, np.asarray(ev.stats[:12])


def time_dlbench(inputs: Any, gt: dict, repeat: int, **kw: Any) -> tuple[list[float], np.ndarray]:
    times, stats = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = coco_evaluate(gt, inputs, curves=False, **kw)
        times.append(time.perf_counter() - t0)
        stats = np.array([res[k] for k in STAT_KEYS])
    return times, stats


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--detections-per-image", type=int, default=100)
    ap.add_argument("--categories", type=int, default=80)
    ap.add_argument(
        "--gt-per-image",
        type=float,
        default=7.8,
        help="mean ground-truth boxes per image with any (10%% of images have none): ~7 overall",
    )
    ap.add_argument("--repeat", type=int, default=3, help="dlbench runs (median reported)")
    ap.add_argument("--skip-pycocotools", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    gt, dt = make_coco_set(
        args.images,
        num_categories=args.categories,
        gt_per_image=args.gt_per_image,
        dt_per_image=args.detections_per_image,
        seed=args.seed,
    )
    print(
        f"generated {len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes "
        f"({len(gt['annotations']) / len(gt['images']):.1f}/image), {len(dt)} detections "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    arrays = {
        "image_id": np.array([d["image_id"] for d in dt]),
        "boxes": np.array([d["bbox"] for d in dt]),
        "scores": np.array([d["score"] for d in dt]),
        "labels": np.array([d["category_id"] for d in dt]),
    }

    result: dict[str, Any] = {
        "images": len(gt["images"]),
        "ground_truth_boxes": len(gt["annotations"]),
        "detections": len(dt),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    dl_times, dl_stats = time_dlbench(dt, gt, args.repeat)
    result["dlbench_results_list_s"] = statistics.median(dl_times)
    print(
        f"dlbench coco_evaluate (COCO results list): median {statistics.median(dl_times):.2f}s "
        f"of {[round(t, 2) for t in dl_times]}"
    )
    arr_times, arr_stats = time_dlbench(arrays, gt, args.repeat)
    result["dlbench_arrays_s"] = statistics.median(arr_times)
    print(f"dlbench coco_evaluate (model arrays):      median {statistics.median(arr_times):.2f}s")
    assert np.array_equal(arr_stats, dl_stats)
    fce_time, fce_stats = time_faster_coco_eval_direct(gt, dt)
    result["faster_coco_eval_direct_s"] = fce_time
    print(f"faster-coco-eval used directly:            {fce_time:.2f}s")
    if not args.skip_pycocotools:
        pyc, pyc_stats = time_pycocotools(gt, dt)
        result["pycocotools_s"] = pyc
        diff = float(np.abs(pyc_stats - dl_stats).max())
        result["max_abs_diff_vs_pycocotools"] = diff
        print(
            "pycocotools: load {load:.2f}s + evaluate {evaluate:.2f}s + accumulate "
            "{accumulate:.2f}s + summarize {summarize:.2f}s = {total:.2f}s".format(**pyc)
        )
        ratio = pyc["total"] / result["dlbench_results_list_s"]
        result["speedup_results_list"] = ratio
        result["speedup_arrays"] = pyc["total"] / result["dlbench_arrays_s"]
        result["speedup_faster_coco_eval_direct"] = pyc["total"] / fce_time
        print(
            f"speed-up vs pycocotools: dlbench (results list) {ratio:.1f}x, dlbench (arrays) "
            f"{result['speedup_arrays']:.1f}x, faster-coco-eval direct "
            f"{result['speedup_faster_coco_eval_direct']:.1f}x"
        )
        print(f"max |dlbench - pycocotools| over the 12 stats: {diff:.3g}")
        print(
            f"faster-coco-eval direct vs pycocotools: {float(np.abs(fce_stats - pyc_stats).max()):.3g}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
