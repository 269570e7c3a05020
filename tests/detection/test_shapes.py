"""The generated ``shapes`` dataset: valid COCO files, deterministic, read by the COCO code paths."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets
from dlbench.adapters.datasets.coco import CocoDetection
from dlbench.adapters.datasets.shapes import ShapesDataset, generate
from dlbench.errors import ConfigError

SMALL = {"train": 6, "val": 10}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("shapes") / "a", seed=0, num_images=SMALL)


def test_layout_and_generated_marking(generated: Path) -> None:
    for split in ("train", "val"):
        doc = json.loads((generated / "annotations" / f"instances_{split}.json").read_text())
        assert len(doc["images"]) == SMALL[split]
        assert doc["info"]["generated"] is True
        assert [c["name"] for c in doc["categories"]] == ["circle", "square", "triangle", "diamond"]
        for im in doc["images"]:
            assert (generated / split / im["file_name"]).is_file()
        assert all(a["id"] > 0 and a["iscrowd"] == 0 for a in doc["annotations"])


def test_pycocotools_loads_the_files(generated: Path) -> None:
    coco = pytest.importorskip("pycocotools.coco")
    gt = coco.COCO(str(generated / "annotations" / "instances_val.json"))
    assert len(gt.getImgIds()) == SMALL["val"] and len(gt.getAnnIds()) > SMALL["val"]
    # every box lies inside its image and has positive size
    for ann in gt.loadAnns(gt.getAnnIds()):
        im = gt.loadImgs(ann["image_id"])[0]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] and y + h <= im["height"]
        assert 0 < ann["area"] <= w * h


def test_perfect_detections_score_ap_one(generated: Path) -> None:
    """The evaluator on the ground truth itself: AP 1 (the files are consistent)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(generated / "annotations" / "instances_val.json"))
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt.loadAnns(gt.getAnnIds())
    ]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, generated: Path) -> None:
    again = generate(tmp_path / "b", seed=0, num_images=SMALL)
    assert _digest(again) == _digest(generated)
    other = generate(tmp_path / "c", seed=1, num_images=SMALL)
    a = json.loads((generated / "annotations" / "instances_val.json").read_text())
    b = json.loads((other / "annotations" / "instances_val.json").read_text())
    assert a["annotations"] != b["annotations"]
    assert _digest(other) != _digest(generated)


def test_all_size_classes_present(tmp_path: Path) -> None:
    root = generate(tmp_path / "d", seed=3, num_images={"train": 1, "val": 30})
    doc = json.loads((root / "annotations" / "instances_val.json").read_text())
    areas = np.array([a["area"] for a in doc["annotations"]])
    assert (areas < 32**2).any()
    assert ((areas >= 32**2) & (areas < 96**2)).any()
    assert (areas >= 96**2).any()
    # occlusion happens: some visible areas are below the full shape's bounding-box area
    assert any(a["area"] < 0.5 * a["bbox"][2] * a["bbox"][3] for a in doc["annotations"])


def test_loads_through_the_coco_adapter(generated: Path) -> None:
    ds = datasets.load(
        "shapes", root=str(generated), split="test", num_images=10, num_train_images=6
    )
    assert isinstance(ds, ShapesDataset) and isinstance(ds, CocoDetection)
    info = ds.info
    assert (info.name, info.task, info.split, info.num_classes) == ("shapes", "detection", "val", 4)
    assert info.source.startswith("generated") and info.transform["generated"] is True
    assert info.input_shape == (3, 320, 320)
    batch = ds.get_batch([0, 1])
    assert batch.inputs.shape == (2, 3, 320, 320) and batch.inputs.dtype == np.float32
    assert batch.targets[0]["boxes"].shape[1] == 4
    assert len(ds.coco_ground_truth()["images"]) == 10


def test_generated_into_the_cache_on_first_use(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path / "cache"))
    ds = datasets.load("shapes", split="val", num_images=3, num_train_images=2, image_size=64)
    folder = tmp_path / "cache" / "shapes" / "v1-seed0-train2-val3"
    assert (folder / "annotations" / "instances_train.json").is_file()
    assert len(ds) == 3 and ds.info.input_shape == (3, 64, 64)
    before = _digest(folder)
    ds2 = datasets.load("shapes", split="val", num_images=3, num_train_images=2, image_size=64)
    assert len(ds2) == 3 and _digest(folder) == before  # reused, not regenerated


def test_data_check_runs_the_coco_checks(generated: Path) -> None:
    from dlbench.data.check import check

    report = check("shapes", root=str(generated), num_images=None, num_train_images=6)
    assert not report.errors, [i.message for i in report.errors]


@pytest.mark.parametrize("kw", [{"split": "bogus"}, {"seed": -1}, {"num_images": 0}])
def test_bad_options(kw, generated: Path) -> None:
    with pytest.raises(ConfigError):
        ShapesDataset(root=generated, **kw)


def test_detections_map_back_through_the_letterbox_to_ap_one(generated: Path) -> None:
    """Ground truth moved into model-input pixels, through Detections and back with the
    dataset's own letterbox parameters, evaluates to AP 1; skipping the inverse does not."""
    from dlbench.detection import Detections, letterbox_boxes, to_coco_results
    from dlbench.metrics.coco.evaluate import coco_evaluate

    ds = ShapesDataset(
        root=generated, split="val", num_images=10, num_train_images=6, image_size=128
    )
    batch = ds.get_batch(np.arange(len(ds)))
    dets = []
    for t in batch.targets:
        xywh = t["boxes"]
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        inp = letterbox_boxes(xyxy, t)
        assert inp.min() >= -1e-9 and inp.max() <= 128 + 1e-9
        dets.append(Detections(inp, np.linspace(1, 0.5, len(inp)), t["labels"]))
    results = to_coco_results(dets, batch.targets, ds.label_to_category_id)
    stats = coco_evaluate(ds.coco_ground_truth(), results, curves=False)
    assert stats["AP"] == pytest.approx(1.0)
    identity = [
        {"scale": 1.0, "pad_x": 0, "pad_y": 0, "image_id": t["image_id"]} for t in batch.targets
    ]
    wrong = to_coco_results(dets, identity, ds.label_to_category_id)
    assert coco_evaluate(ds.coco_ground_truth(), wrong, curves=False)["AP"] < 0.5


def test_never_overwrites_foreign_files(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds other files"):
        ShapesDataset(root=foreign, split="val", num_images=2, num_train_images=2)
    assert (foreign / "notes.txt").read_text() == "keep me"
    # an empty folder is fine, and a folder the generator wrote is replaced on regeneration
    empty = tmp_path / "empty"
    empty.mkdir()
    generate(empty, seed=0, num_images={"train": 1, "val": 1})
    generate(empty, seed=1, num_images={"train": 1, "val": 2})
    doc = json.loads((empty / "annotations" / "instances_val.json").read_text())
    assert doc["info"]["seed"] == 1 and len(doc["images"]) == 2


def test_first_use_by_two_processes_keeps_one_copy(tmp_path: Path) -> None:
    """Generation racing with another process: a complete copy already there is kept."""
    root = generate(tmp_path / "r", seed=0, num_images={"train": 1, "val": 1})
    before = _digest(root)
    marker = root / "annotations" / "instances_val.json"
    stamp = marker.stat().st_mtime_ns
    generate(root, seed=0, num_images={"train": 1, "val": 1}, replace=False)
    assert marker.stat().st_mtime_ns == stamp and _digest(root) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shapes-")]
