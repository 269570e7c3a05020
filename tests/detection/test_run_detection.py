"""Detection in the benchmark run: the accuracy scenario of a detector (COCO stats checked against
pycocotools run directly on independently mapped boxes), the timing split, the backend option
``postprocess``, the task check before any worker, the report views and the CLI."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets, zoo
from dlbench.errors import ConfigError, DataError
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.detection import (
    STAGES,
    TASK_PRESETS,
    apply_task_preset,
    check_model_task,
    check_task,
    pipeline_for,
)
from dlbench.model.backend import get_backend
from dlbench.registry import backends as backend_registry
from dlbench.report.detection import detection_lines, detection_summary, html_section

SIZE = 64
STAT_ORDER = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes-run")
    return datasets.load(
        "shapes", root=str(root), split="val", num_images=6, num_train_images=2, image_size=SIZE
    )


@pytest.fixture(scope="module")
def spec():
    return zoo.get(
        "fcos_mobilenet_v2", num_classes=4, input_shape=(3, SIZE, SIZE), seed=3, pretrained=False
    )


def _pycocotools_stats(ds, spec, raw_per_image, decoder) -> np.ndarray:
    """The 12 stats from pycocotools on boxes mapped back here, by hand (not dlbench's code)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = json.loads(json.dumps(ds.coco_ground_truth()))
    gt.createIndex()
    dets = []
    for i, raw in enumerate(raw_per_image):
        t = ds.get_batch([i]).targets[0]
        for d in decoder.postprocess(raw):
            for box, score, label in zip(d.boxes, d.scores, d.labels):
                x1 = min(max((box[0] - t["pad_x"]) / t["scale"], 0), t["orig_width"])
                y1 = min(max((box[1] - t["pad_y"]) / t["scale"], 0), t["orig_height"])
                x2 = min(max((box[2] - t["pad_x"]) / t["scale"], 0), t["orig_width"])
                y2 = min(max((box[3] - t["pad_y"]) / t["scale"], 0), t["orig_height"])
                dets.append(
                    {
                        "image_id": int(t["image_id"]),
                        "category_id": int(ds.label_to_category_id([label])[0]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(score),
                    }
                )
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats)


def test_accuracy_scenario_equals_pycocotools_on_the_same_detections(tiny, spec) -> None:
    """The scenario's 12 stats are pycocotools' own on the reference pipeline's boxes mapped back
    through each image's letterbox; each stage has one raw sample per image."""
    model = get_backend("numpy").build(spec)
    pipe = pipeline_for(spec, "numpy", score_threshold=0.0)
    rec = run_scenario("accuracy", model, tiny, batch_size=4, detection=pipe)
    raws = [model.predict(tiny.get_batch([i]).inputs) for i in range(len(tiny))]
    want = _pycocotools_stats(tiny, spec, raws, pipe.decoder)
    got = np.array([rec["metrics"][k] for k in STAT_ORDER])
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert rec["metrics"]["detections"] > 0 and rec["evaluated_samples"] == len(tiny)
    for s in STAGES:
        assert len(rec["stages"][s]["samples_s"]) == len(tiny)
        assert rec["stages"][s]["stats"]["n"] == len(tiny)
    parts = sum(np.asarray(rec["stages"][s]["samples_s"]) for s in STAGES[:3])
    np.testing.assert_allclose(rec["stages"]["end_to_end"]["samples_s"], parts, rtol=1e-9)
    assert rec["pipeline"]["postprocess"]["mode"] == "numpy" and rec["validity"]["valid"]


def test_boxes_not_mapped_back_would_be_caught(tiny, spec) -> None:
    """A pipeline that skips the letterbox inverse (boxes left in input pixels) gives other
    stats than pycocotools on correctly mapped boxes: the check above can fail."""
    model = get_backend("numpy").build(spec)
    pipe = pipeline_for(spec, "numpy", score_threshold=0.0)
    raws = [model.predict(tiny.get_batch([i]).inputs) for i in range(len(tiny))]
    want = _pycocotools_stats(tiny, spec, raws, pipe.decoder)
    from dlbench.detection import to_coco_results
    from dlbench.metrics.coco import coco_evaluate

    parts = []
    for i, raw in enumerate(raws):
        t = dict(tiny.get_batch([i]).targets[0], scale=1.0, pad_x=0.0, pad_y=0.0)
        parts.append(to_coco_results(pipe.run(raw), [t], tiny.label_to_category_id))
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    wrong = coco_evaluate(tiny.coco_ground_truth(), merged, curves=False)
    assert not np.allclose([wrong[k] for k in STAT_ORDER], want, atol=1e-6)


@pytest.fixture(scope="module")
def reference_run(tiny, spec):
    return run_scenario(
        "accuracy",
        get_backend("numpy").build(spec),
        tiny,
        batch_size=1,
        limit=3,
        detection=pipeline_for(spec, "numpy", score_threshold=0.0),
    )


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "tensorflow", "jax"])
def test_native_pipeline_same_stats_as_reference(tiny, spec, reference_run, backend) -> None:
    """Each framework's model + native post-processing gives the reference's COCO stats."""
    pytest.importorskip(backend)
    ref = reference_run
    pipe = pipeline_for(spec, backend, score_threshold=0.0)
    assert pipe.mode == "native" and pipe.module.endswith(f"{backend}.postprocess")
    model = get_backend(backend, intra_op_threads=1).build(spec)
    got = run_scenario("accuracy", model, tiny, batch_size=1, limit=3, detection=pipe)
    assert got["evaluated_samples"] == 3 and got["metrics"]["detections"] > 0
    for k in STAT_ORDER:
        assert abs(got["metrics"][k] - ref["metrics"][k]) <= 1e-3, k


def test_postprocess_option_is_checked_and_picks_the_reference(spec) -> None:
    for name in ("numpy", "torch", "tensorflow", "jax", "onnxruntime"):
        m = backend_registry.manifest(name)
        assert m.validate_options({"postprocess": "numpy"}) == {"postprocess": "numpy"}
        with pytest.raises(ConfigError, match="postprocess"):
            m.validate_options({"postprocess": "fast"})
    p = pipeline_for(spec, "torch>onnxruntime", "numpy")
    assert p.mode == "numpy" and p.asked == "numpy" and p.module.startswith("dlbench.detection")
    with pytest.raises(ConfigError, match="postprocess"):
        pipeline_for(spec, "torch", "fast")
    assert pipeline_for(zoo.get("mlp"), "torch") is None  # not a detector


def test_composite_backend_post_processes_in_its_runtime(spec) -> None:
    pytest.importorskip("onnxruntime")
    p = pipeline_for(spec, "torch>onnxruntime")
    assert p.module == "dlbench.backends.onnxruntime.postprocess"
    assert p.postprocess is importlib.import_module(p.module).postprocess


def test_a_backend_without_native_postprocess_says_so(spec, monkeypatch) -> None:
    p = pipeline_for(spec, "nosuchframework")
    assert p.mode == "numpy" and p.asked == "native" and "no native post-processing" in p.note


def test_task_mismatch_is_a_config_error(tiny) -> None:
    digits = datasets.load("digits", split="test")
    with pytest.raises(
        ConfigError, match="Expected a detection dataset .* Received: dataset 'digits'"
    ):
        check_task(
            "fcos_mobilenet_v2", zoo.get("fcos_mobilenet_v2", input_shape=(3, 64, 64)), digits.info
        )
    with pytest.raises(ConfigError, match="Expected a detection model .* Received: model 'mlp'"):
        check_model_task("mlp", tiny.info)
    check_model_task("mlp", digits.info)  # same task: nothing to say
    check_task("x", zoo.get("retinanet_mobilenet_v2", input_shape=(3, 64, 64)), tiny.info)


def test_accuracy_without_the_pipeline_on_detection_data_is_refused(tiny, spec) -> None:
    with pytest.raises(ConfigError, match="post-processing"):
        run_scenario("accuracy", get_backend("numpy").build(spec), tiny, batch_size=2)


def test_class_count_mismatch_is_a_data_error(tiny) -> None:
    other = zoo.get("fcos_mobilenet_v2", num_classes=3, input_shape=(3, SIZE, SIZE))
    with pytest.raises(DataError, match="Expected a detector with 4 classes"):
        run_scenario(
            "accuracy",
            get_backend("numpy").build(other),
            tiny,
            batch_size=1,
            detection=pipeline_for(other, "numpy"),
        )


def test_task_preset_fills_only_what_was_not_given() -> None:
    data = apply_task_preset(
        "detection", {"stop_rule": {}}, given={"dataset"}, given_stop={"max_time"}
    )
    assert data["model"] == TASK_PRESETS["detection"]["model"] and "dataset" not in data
    preset_rule = TASK_PRESETS["detection"]["stop_rule"]
    assert "max_time" not in data["stop_rule"]  # given on the command line: left to it
    assert data["stop_rule"] == {k: v for k, v in preset_rule.items() if k != "max_time"}
    with pytest.raises(ConfigError, match="--task"):
        apply_task_preset("segmentation", {}, given=set())


def _doc(aps: dict[str, float]) -> dict:
    cells = []
    for b, ap in aps.items():
        stages = {s: {"stats": {"median": 0.01, "p90": 0.02, "p99": 0.03, "n": 3}} for s in STAGES}
        cells.append(
            {
                "id": f"{b}/cpu/accuracy/bs1",
                "backend": b,
                "device": "cpu",
                "scenario": "accuracy",
                "batch_size": 1,
                "status": "ok",
                "metrics": {k: (ap if k == "AP" else 0.5) for k in STAT_ORDER},
                "stages": stages,
                "evaluated_samples": 3,
                "pipeline": {"throughput": 33.3, "postprocess": {"mode": "native"}},
            }
        )
    return {"cells": cells, "backends": {}}


def test_report_views_carry_the_stats_and_the_largest_ap_difference() -> None:
    from dlbench.report.table import summary_rows, visible_columns, winner_sentences

    doc = _doc({"numpy": 0.5, "torch": 0.5004, "jax": 0.4990})
    s = detection_summary(doc)
    assert s["max_ap_diff"] == pytest.approx(0.0014) and s["max_ap_diff_between"] == [
        "jax",
        "torch",
    ]
    assert set(s["backends"]["torch"]["stats"]) == set(STAT_ORDER)
    rows = summary_rows(doc)
    keys = {c.key for c in visible_columns(rows)}
    assert {"AP", "AP50", "pre_median", "model_median", "post_median", "e2e_median"} <= keys
    assert any("largest difference between backends 0.0014" in t for t in winner_sentences(rows))
    text = "\n".join(detection_lines(doc))
    assert "0.0014 (jax vs torch)" in text and "ARl" in text
    page = html_section(doc)
    assert all(f"<th>{k}</th>" in page for k in STAT_ORDER) and "0.0014" in page
    assert detection_summary({"cells": []}) is None and html_section({"cells": []}) == ""


def test_cli_task_mismatch_exits_2_before_any_worker(capsys, tmp_path: Path) -> None:
    from dlbench.cli import main

    out = tmp_path / "x.json"
    rc = main(
        ["run", "--model", "fcos_mobilenet_v2", "--dataset", "digits", "--out", str(out), "-q"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Expected a detection dataset" in err, err
    assert not out.exists() or not json.loads(out.read_text()).get("cells")


@pytest.mark.slow
def test_cli_run_detector_end_to_end(tmp_path: Path) -> None:
    """``dlbench run --model fcos_mobilenet_v2 --dataset shapes``: worker processes, the result
    file has the 12 stats per backend, the stage samples and the detection summary."""
    from dlbench.cli import main

    out = tmp_path / "r.json"
    rc = main(
        [
            "run",
            "--model",
            "fcos_mobilenet_v2",
            "--dataset",
            "shapes",
            "--root",
            str(tmp_path / "shapes"),
            "-D",
            f"image_size={SIZE}",
            "-D",
            "num_images=4",
            "-D",
            "num_train_images=2",
            "--limit",
            "3",
            "--backends",
            "numpy,torch",
            "--scenario",
            "accuracy",
            "--threads",
            "1",
            "--out",
            str(out),
            "-q",
        ]
    )
    pytest.importorskip("torch")
    doc = json.loads(out.read_text())
    assert rc == 0, doc.get("warnings")
    assert set(doc["detection"]["backends"]) == {"numpy", "torch"}
    assert doc["detection"]["max_ap_diff"] <= 1e-3
    for c in doc["cells"]:
        assert len(c["stages"]["model"]["samples_s"]) == 3
        assert set(STAT_ORDER) <= set(c["metrics"])
    assert doc["backends"]["torch"]["cpu"]["settings"]["postprocess"]["mode"] == "native"


@pytest.mark.slow
def test_cli_via_onnx_runs_a_detector(tmp_path: Path) -> None:
    """``--via-onnx`` with a detector: exported from torch, run in ONNX Runtime, its raw outputs
    within parity of the reference and its COCO stats those of torch's own run."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from dlbench.cli import main

    out = tmp_path / "r.json"
    rc = main(
        [
            "run",
            "--model",
            "fcos_mobilenet_v2",
            "--dataset",
            "shapes",
            "--root",
            str(tmp_path / "shapes"),
            "-D",
            f"image_size={SIZE}",
            "-D",
            "num_images=4",
            "-D",
            "num_train_images=2",
            "--limit",
            "3",
            "--backends",
            "torch",
            "--via-onnx",
            "--scenario",
            "accuracy",
            "--threads",
            "1",
            "--out",
            str(out),
            "-q",
        ]
    )
    doc = json.loads(out.read_text())
    assert rc == 0, doc.get("warnings")
    via = doc["backends"]["torch>onnxruntime"]["cpu"]
    assert via["status"] == "ok" and via["parity"]["ok"] and via["export"]["exporter"]
    assert via["settings"]["postprocess"]["module"] == "dlbench.backends.onnxruntime.postprocess"
    stats = doc["detection"]["backends"]
    assert set(stats) == {"torch", "torch>onnxruntime"}
    for k in STAT_ORDER:
        assert abs(stats["torch"]["stats"][k] - stats["torch>onnxruntime"]["stats"][k]) <= 1e-3


def test_a_detection_dataset_runs_its_accuracy_pass_at_batch_1() -> None:
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.scenarios.detection import per_image_accuracy

    cfg = per_image_accuracy(BenchmarkConfig(model="fcos_mobilenet_v2", dataset="shapes"))
    assert cfg.accuracy_batch_size == 1
    assert any(c.id.endswith("accuracy/bs1") for c in cfg.cells())
    assert per_image_accuracy(BenchmarkConfig()).accuracy_batch_size == 256  # digits: unchanged
