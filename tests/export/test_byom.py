"""Bring your own model: a torch module, a Keras model and a JAX function defined here (not in
the zoo) each go wrap -> run (scenarios and metrics) -> export -> run in ONNX Runtime, with
parity checked."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import FAST, need

import dlbench
from dlbench.analysis.parity import compare
from dlbench.execution.measure import StopRule
from dlbench.execution.scenarios import run_scenario
from dlbench.export import to_onnx


@pytest.fixture(scope="module")
def digits():
    return dlbench.data.load("digits", split="test")


def _run_everything(model, dataset):
    """Latency, throughput and accuracy through the same code as a benchmark cell."""
    rule = StopRule.from_dict(FAST)
    for scenario, bs in (("latency", 1), ("throughput", 16), ("accuracy", 128)):
        opts = {"limit": 128} if scenario == "accuracy" else {"stop_rule": rule}
        rec = run_scenario(scenario, model, dataset, batch_size=bs, **opts)
        if scenario == "accuracy":  # the first 128 samples, recomputed from predict()
            batch = dataset.get_batch(np.arange(128))
            want = float(np.mean(model.predict(batch.inputs).argmax(1) == batch.targets))
            assert rec["metrics"]["accuracy"] == pytest.approx(want, abs=1e-12)
        else:
            assert rec["timing"]["stats"]["median"] > 0


def _export_and_check(model, dataset, path, **kw):
    report = to_onnx(model, path, **kw)
    assert report.ok, report.parity
    ort_model = dlbench.get_backend("onnxruntime").wrap(path)
    assert ort_model.input_shape == (1, 8, 8)
    _run_everything(ort_model, dataset)
    batch = dataset.get_batch(range(64)).inputs
    parity = compare(model.predict(batch), ort_model.predict(batch))
    assert parity["ok"], parity
    return report


def test_user_torch_module(tmp_path, digits):
    need("torch")
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(0)
    model = dlbench.get_backend("torch").wrap(TinyNet(), input_shape=(1, 8, 8))
    assert model.name == "TinyNet" and model.settings()["wrapped"] is True
    _run_everything(model, digits)
    report = _export_and_check(model, digits, tmp_path / "tiny.onnx")
    assert report.source == "torch" and report.op_counts.get("Conv") == 1
    # the native module goes straight to to_onnx too (wrapped on the way)
    again = to_onnx(
        TinyNet(), tmp_path / "tiny2.onnx", input_shape=(1, 8, 8), exporter="torchscript"
    )
    assert again.ok and again.exporter == "torchscript"


def test_user_keras_model(tmp_path, digits):
    need("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="gelu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model = dlbench.get_backend("tensorflow").wrap(net)
    assert model.input_shape == (1, 8, 8) and model.layout == "NHWC"
    _run_everything(model, digits)
    report = _export_and_check(model, digits, tmp_path / "keras.onnx")
    assert report.source == "tensorflow" and report.exporter == "tf2onnx"


def test_user_keras_model_eager_mode(digits):
    need("tensorflow")
    import keras

    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model = dlbench.get_backend("tensorflow", mode="eager").wrap(net, input_shape=(1, 8, 8))
    x = digits.get_batch(range(4)).inputs
    ref = net(x.transpose(0, 2, 3, 1)).numpy()
    np.testing.assert_allclose(model.predict(x), ref, rtol=1e-6)


@pytest.mark.slow  # 25 s of the default suite (jax2onnx); the torch and Keras cases stay
def test_user_jax_function(tmp_path, digits):
    need("jax")
    import jax
    import jax.numpy as jnp

    def mlp(params, x):
        h = x.reshape(x.shape[0], -1)
        h = jax.nn.gelu(h @ params["w1"] + params["b1"])
        return h @ params["w2"] + params["b2"]

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "w1": jax.random.normal(k1, (64, 32)) * 0.1,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(k2, (32, 10)) * 0.1,
        "b2": jnp.zeros(10),
    }
    model = dlbench.get_backend("jax").wrap(mlp, params, input_shape=(1, 8, 8))
    _run_everything(model, digits)
    report = _export_and_check(model, digits, tmp_path / "jax.onnx")
    assert report.source == "jax" and report.exporter == "jax2onnx"
    # the wrapped model still runs (and agrees) after the export traced it
    x = digits.get_batch(range(8)).inputs
    assert compare(np.asarray(mlp(params, x)), model.predict(x))["ok"]


def test_user_jax_function_nhwc(tmp_path, digits):
    need("jax")
    import jax.numpy as jnp

    def nhwc_fn(params, x):  # takes (N, H, W, C)
        return jnp.mean(x, axis=(1, 2)) @ params

    params = jnp.ones((1, 3))
    model = dlbench.get_backend("jax").wrap(nhwc_fn, params, input_shape=(1, 8, 8), layout="NHWC")
    x = digits.get_batch(range(4)).inputs
    np.testing.assert_allclose(model.predict(x)[:, 0], x.mean(axis=(1, 2, 3)), rtol=1e-5)
    assert to_onnx(model, tmp_path / "nhwc.onnx").ok


def test_keras_applications_mobilenet_v2(tmp_path):
    need("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), weights=None, classes=10, classifier_activation=None
    )
    model = dlbench.get_backend("tensorflow").wrap(net)
    assert model.input_shape == (3, 64, 64)
    report = to_onnx(model, tmp_path / "mnv2.onnx")
    assert report.ok, report.parity
    assert report.op_counts.get("Conv", 0) >= 50
