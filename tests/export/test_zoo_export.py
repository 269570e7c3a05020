"""Every zoo model exports from torch, tensorflow and jax and ONNX Runtime matches the source."""

from __future__ import annotations

import json

import pytest
from export_helpers import need

from dlbench import zoo
from dlbench.export import DEFAULT_OPSET, summarize, to_onnx

SOURCES = ("torch", "tensorflow", "jax")
#: The default (fast) subset: dense, conv/pool, residual + batch norm, recurrent. vit_tiny
#: (attention) is in the slow set: its torch and TensorFlow exports took 23 s and 18 s of CI.
FAST_MODELS = ("mlp", "lenet5", "resnet20", "lstm")


def _check(report, spec, source):
    p = report.parity
    assert p["ok"], p
    assert p["max_abs_diff"] <= 1e-4 * p["output_scale"]
    assert p["argmax_agreement"] == 1.0
    assert p["batch_sizes"] == [8, 1]
    assert report.source == source and report.opset == DEFAULT_OPSET
    assert report.file_bytes > 0 and sum(report.op_counts.values()) > 0
    # float initializers hold at least the spec's weights (exporters may add small constants)
    assert report.params >= 0.99 * spec.num_params()
    s = summarize(report.path)
    assert s["inputs"][0]["name"] == "input" and s["inputs"][0]["shape"][0] == "batch"
    assert s["inputs"][0]["shape"][1:] == list(spec.input_shape)
    assert s["outputs"][0]["name"] == "output"
    meta = s["metadata"]
    assert meta["dlbench.source"] == source and meta["dlbench.fingerprint"] == spec.fingerprint()
    assert json.loads(meta["dlbench.analysis.parity"])["ok"] is True


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", FAST_MODELS)
def test_zoo_export_fast(tmp_path, name, source):
    need(source)
    spec = zoo.get(name)
    report = to_onnx(spec, tmp_path / f"{name}.onnx", source=source)
    _check(report, spec, source)


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", [n for n in zoo.names() if n not in FAST_MODELS])
def test_zoo_export_all(tmp_path, name, source):
    need(source)
    spec = zoo.get(name)
    report = to_onnx(spec, tmp_path / f"{name}.onnx", source=source)
    _check(report, spec, source)


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_export_torchscript_all(tmp_path, name):
    need("torch", "torchscript")
    spec = zoo.get(name)
    report = to_onnx(spec, tmp_path / f"{name}.onnx", source="torch", exporter="torchscript")
    _check(report, spec, "torch")


def test_torchscript_exporter(tmp_path):
    need("torch", "torchscript")
    spec = zoo.get("resnet20")
    report = to_onnx(spec, tmp_path / "r.onnx", exporter="torchscript")
    assert report.exporter == "torchscript"
    _check(report, spec, "torch")


@pytest.mark.parametrize("source", SOURCES)
def test_static_batch_names_and_opset(tmp_path, source):
    need(source)
    spec = zoo.get("digits_cnn")
    report = to_onnx(
        spec,
        tmp_path / "d.onnx",
        source=source,
        dynamic_batch=False,
        batch_size=4,
        input_names=["pixels"],
        output_names=["logits"],
    )
    assert report.parity["ok"] and report.parity["batch_sizes"] == [4]
    s = summarize(tmp_path / "d.onnx")
    assert s["inputs"][0] == {"name": "pixels", "shape": [4, 1, 8, 8], "dtype": "float32"}
    assert s["outputs"][0]["name"] == "logits" and s["outputs"][0]["shape"] == [4, 10]


def test_torch_opset_option(tmp_path):
    need("torch")
    report = to_onnx(zoo.get("mlp"), tmp_path / "m.onnx", opset=20)
    assert report.opset == 20 and report.ok
