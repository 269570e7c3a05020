"""dlbench data check: duplicates, leakage, label range, NaN, COCO boxes, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from dlbench.cli.data import cli_main
from dlbench.data.check import check
from dlbench.data.dataset import ArrayDataset, DatasetInfo


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False), buf


def _checks(report, level: str) -> set[tuple[str, str]]:
    return {(i.split, i.check) for i in report.issues if i.level == level}


@pytest.fixture
def clean_cifar(tmp_path: Path, formats) -> Path:
    (xtr, _), (xte, _) = formats.random_cifar(40, 10, 1), formats.random_cifar(20, 10, 2)
    balanced = (xtr, np.arange(40) % 10), (xte, np.arange(20) % 10)
    formats.write_files(formats.cifar10_files(*balanced), tmp_path)
    return tmp_path


def test_clean_dataset_passes(clean_cifar: Path, tmp_path: Path) -> None:
    report = check("cifar10", root=str(clean_cifar))
    assert report.ok and not report.errors, report.to_json()
    assert set(report.stats) == {"train", "test"}
    st = report.stats["test"]
    assert st["samples"] == 20 and sum(st["class_counts"].values()) == 20
    assert st["imbalance_ratio"] == 1.0 and st["min_class_count"] == 2
    console, buf = _console()
    out = tmp_path / "report.json"
    assert cli_main("cifar10", str(clean_cifar), None, str(out), console) == 0
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["dataset"] == "cifar10" and doc["schema"]
    assert "passed" in buf.getvalue()


def test_duplicates_leakage_and_label_range(tmp_path: Path, formats) -> None:
    (xtr, ytr), (xte, yte) = formats.random_cifar(40, 10, 1), formats.random_cifar(20, 10, 2)
    xtr[5] = xtr[17]  # duplicate within train
    ytr[5] = ytr[17]
    xte[3] = xtr[30]  # leakage test -> train
    xte[8] = xtr[2]
    yte[11] = 12  # label out of range for 10 classes
    formats.write_files(formats.cifar10_files((xtr, ytr), (xte, yte)), tmp_path)
    report = check("cifar10", root=str(tmp_path))
    assert not report.ok
    errors = _checks(report, "error")
    assert ("test", "leakage") in errors and ("test", "label range") in errors
    assert ("train", "duplicates") in _checks(report, "warning")
    dup = next(i for i in report.issues if i.check == "duplicates" and i.split == "train")
    assert dup.count == 1 and dup.examples == [[5, 17]]  # one extra copy, in one group
    assert "1 exact duplicate sample(s) in 1 group(s)" in dup.message
    leak = next(i for i in report.issues if i.check == "leakage")
    assert leak.count == 2 and sorted(leak.examples) == [3, 8]
    rng = next(i for i in report.issues if i.check == "label range")
    assert rng.examples == [11] and "12" in rng.message
    console, buf = _console()
    out = tmp_path / "r.json"
    assert cli_main("cifar10", str(tmp_path), None, str(out), console) == 1
    doc = json.loads(out.read_text())
    assert doc["ok"] is False and doc["summary"]["errors"] == 2
    assert doc["issues"][0]["level"] == "error"
    text = buf.getvalue()
    assert "leakage" in text and "failed" in text
    # one split: still checked for leakage against the other
    only = check("cifar10", root=str(tmp_path), split="test")
    assert ("test", "leakage") in _checks(only, "error") and set(only.stats) == {"test"}


def test_nan_and_imbalance_in_arrays() -> None:
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    x[7, 2] = np.nan
    x[9, 0] = np.inf
    y = np.zeros(30, np.int64)
    y[:2] = 1
    info = DatasetInfo("arr", "classification", "test", (4,), 3, 30, "memory")
    report = check(ArrayDataset(x, y, info))
    nan = next(i for i in report.issues if i.check == "nan/inf")
    assert nan.level == "error" and nan.examples == [7, 9]
    balance = next(i for i in report.issues if i.check == "class balance")
    assert balance.level == "warning" and "no samples" in balance.message  # class 2 is empty
    assert report.stats["test"]["class_counts"] == {"0": 28, "1": 2, "2": 0}


def test_synthetic_is_flagged_but_ok() -> None:
    report = check("synthetic")
    assert report.ok
    assert ("test", "synthetic") in _checks(report, "info")


def test_coco_checks(tmp_path: Path, formats) -> None:
    gt = formats.coco_fixture(tmp_path)
    anns = gt["annotations"]
    anns[0]["bbox"] = [60.0, 10.0, 30.0, 5.0]  # image 0 is 64 wide: outside
    anns[1]["bbox"] = [1.0, 1.0, 0.0, 4.0]  # zero area
    anns[2]["category_id"] = 12  # not a COCO 2017 category
    anns[3]["image_id"] = 999  # unknown image
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    report = check("coco", root=str(tmp_path), split="val")
    errors = {i.check: i for i in report.errors}
    assert {"boxes", "categories", "images"} <= set(errors)
    msgs = " ".join(i.message for i in report.errors)
    assert "outside" in msgs and "zero" in msgs and "unknown category" in msgs
    assert "image id not in 'images'" in msgs
    no_ann = [i for i in report.issues if i.level == "info" and "without annotations" in i.message]
    assert no_ann and no_ann[0].examples == [gt["images"][3]["id"]]
    console, _ = _console()
    assert cli_main("coco", str(tmp_path), "val", None, console) == 1


def test_coco_clean_and_files(tmp_path: Path, formats) -> None:
    gt = formats.coco_fixture(tmp_path)
    assert check("coco", root=str(tmp_path), split="val").ok
    (tmp_path / "val2017" / gt["images"][0]["file_name"]).write_bytes(b"junk")
    (tmp_path / "val2017" / gt["images"][1]["file_name"]).unlink()
    report = check("coco", root=str(tmp_path), split="val")
    assert {"corrupt files", "missing files"} <= {i.check for i in report.errors}


def test_imagefolder_missing_corrupt_and_leakage(tmp_path: Path, formats) -> None:
    formats.imagefolder_fixture(tmp_path / "train", ["a", "b"], 3)
    formats.imagefolder_fixture(tmp_path / "val", ["a", "b"], 2, seed=9)
    (tmp_path / "val" / "b" / "img_1.png").write_bytes(
        (tmp_path / "train" / "a" / "img_0.png").read_bytes()
    )
    (tmp_path / "train" / "b" / "img_2.png").write_bytes(b"not an image")
    report = check("imagefolder", root=str(tmp_path))
    errors = _checks(report, "error")
    assert ("val", "leakage") in errors and ("train", "corrupt files") in errors
    corrupt = next(i for i in report.issues if i.check == "corrupt files")
    assert corrupt.examples[0].endswith("img_2.png")


def test_cli_load_failure_exits_1(tmp_path: Path) -> None:
    console, buf = _console()
    out = tmp_path / "r.json"
    assert cli_main("cifar10", str(tmp_path / "none"), None, str(out), console) == 1
    assert "could not check" in buf.getvalue()
    assert json.loads(out.read_text())["ok"] is False
