"""``dlbench run --model resnet50 --dataset imagefolder --root DIR``: the classic ImageNet
benchmark, with the input the model expects (224x224, ImageNet mean/std) stated against the
dataset's transform."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlbench import zoo
from dlbench.data.dataset import DatasetInfo
from dlbench.execution.runner import _input_check

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _info(shape=(3, 224, 224), **transform) -> DatasetInfo:
    return DatasetInfo(
        name="imagefolder",
        task="classification",
        split="val",
        input_shape=shape,
        num_classes=1000,
        num_samples=1,
        source="x",
        transform=transform,
    )


def test_input_check_states_a_match_and_catches_a_mismatch():
    spec = zoo.get("resnet50", weights="zeros")
    ok = _input_check(spec, _info(resize=256, crop=224, mean=MEAN, std=STD))
    assert ok["match"] and ok["message"].endswith("they match.")
    assert "3x224x224" in ok["message"] and "(0.485, 0.456, 0.406)" in ok["message"]
    # a dataset normalised another way (e.g. [-1, 1] Inception style): said, not silent
    bad = _input_check(spec, _info(resize=256, crop=224, mean=[0.5] * 3, std=[0.5] * 3))
    assert not bad["match"] and bad["message"].startswith("Input mismatch")
    small = zoo.get("resnet50", input_shape=(3, 64, 64), weights="zeros")
    assert not _input_check(small, _info(resize=256, crop=224, mean=MEAN, std=STD))["match"]
    synthetic = _input_check(spec, _info())  # a transform not described: stated, no claim
    assert synthetic["match"] and "does not describe its transform" in synthetic["message"]
    assert _input_check(zoo.get("mlp"), _info((1, 8, 8))) is None  # a model that says nothing


@pytest.mark.slow  # resnet50 at 224x224 on the float64 reference: minutes on 2 cores
def test_run_resnet50_on_an_image_folder(run_cli, tmp_path):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(2):
            img = rng.integers(0, 256, (260, 300, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / "val" / cls / f"{i}.JPEG", quality=90)
    out = tmp_path / "r.json"
    config = tmp_path / "small.toml"  # the accuracy pass's batch: 256 (the default) at 224x224
    config.write_text("accuracy_batch_size = 4\n")  # is refused by the memory check on 16 GB
    proc = run_cli(
        "run",
        "--model",
        "resnet50",
        "--dataset",
        "imagefolder",
        "--root",
        str(tmp_path / "val"),
        "--backends",
        "numpy,onnxruntime",
        "--scenario",
        "accuracy",
        "--accuracy-limit",
        "4",
        "--config",
        str(config),
        "--out",
        str(out),
        "--quiet",
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(out.read_text())
    assert doc["dataset"]["input_shape"] == [3, 224, 224]
    assert doc["model"]["input"]["match"] is True
    assert doc["model"]["stats"]["macs"] > 4e9  # the real ResNet-50, 2 classes here
    for backend in ("numpy", "onnxruntime"):
        assert doc["backends"][backend]["cpu"]["parity"]["ok"]
    assert {c["status"] for c in doc["cells"]} == {"ok"}
    assert "they match" in proc.stdout.replace("\n", " ")
