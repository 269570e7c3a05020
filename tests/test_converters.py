"""Converters from live framework objects (dlbench.spec.from_torch / from_keras / from_jax): the
spec's float64 NumPy reference computes what the framework object computes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401  (torch before tensorflow: the reverse order can crash)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from dlbench.analysis.parity import compare  # noqa: E402
from dlbench.errors import ConfigError, SpecError  # noqa: E402
from dlbench.model.backend import get_backend  # noqa: E402


def _reference(spec, x):
    return get_backend("numpy").build(spec).predict(x)


def _torch_net():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def test_from_torch_matches_the_module():
    import torch

    from dlbench.spec import from_torch

    net = _torch_net()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    spec = from_torch(net, x, name="mynet")
    assert spec.name == "mynet" and spec.input_shape == (3, 16, 16)
    assert spec.metadata["converted_from"]["framework"] == "torch"
    x2 = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))  # unseen inputs
    with torch.no_grad():
        want = net(x2).numpy()
    rec = compare(want, _reference(spec, x2.numpy()), tolerance=1e-4)
    assert rec["ok"] and rec["argmax_agreement_strict"] == 1.0, rec
    # batch norm folded into the conv by the exporter: its 2 x 8 affine weights are gone
    assert spec.num_params() == sum(p.numel() for p in net.parameters()) - 2 * 8


def test_from_torch_rejects_a_bad_example():
    from dlbench.spec import from_torch

    with pytest.raises(ConfigError, match="non-empty batch"):
        from_torch(_torch_net(), np.zeros(3, np.float32))


def test_from_native_needs_an_object_a_backend_wraps():
    from dlbench.spec import from_native

    with pytest.raises(ConfigError, match="Cannot tell which framework a dict comes from"):
        from_native({"not": "a model"})


def test_a_spec_that_differs_from_the_source_is_an_error(monkeypatch):
    """The final check is not vacuous: an import that came out wrong (one weight changed here)
    fails with the measured difference."""
    import torch

    import dlbench.spec as spec_module

    real = spec_module.from_onnx

    def corrupted(path, name=None, input_shape=None):
        spec = real(path, name=name, input_shape=input_shape)
        key = next(k for k, v in spec.params.items() if v.ndim == 4)
        spec.params[key] = spec.params[key] * np.float32(1.5)
        spec._invalidate()  # the resolved graph holds the arrays it validated
        return spec

    monkeypatch.setattr(spec_module, "from_onnx", corrupted)
    with pytest.raises(SpecError, match="does not compute what the torch model computes"):
        spec_module.from_torch(_torch_net(), torch.randn(2, 3, 16, 16))


@pytest.mark.slow  # TensorFlow's import and tf2onnx: ~25 s of CPU
def test_from_keras_matches_the_model():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import keras

    from dlbench.spec import from_keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(6, 3, padding="same", use_bias=True)(inp)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(4)(y)
    model = keras.Model(inp, y, name="kerasnet")
    bn = model.layers[2]
    rng = np.random.default_rng(0)
    bn.set_weights(
        [
            rng.uniform(0.8, 1.2, 6),
            rng.normal(0, 0.1, 6),
            rng.normal(0, 0.1, 6),
            rng.uniform(0.5, 1.5, 6),
        ]
    )
    spec = from_keras(model)
    assert spec.input_shape == (3, 12, 12)  # dlbench's NCHW
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    want = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
    rec = compare(want, _reference(spec, x), tolerance=1e-4)
    assert rec["ok"] and rec["argmax_agreement_strict"] == 1.0, rec
    with pytest.raises(ConfigError, match="per-sample shape"):
        from_keras(model, example=np.zeros((2, 12, 12, 3), np.float32))


@pytest.mark.slow  # jax2onnx's import and trace: ~30 s of CPU
def test_from_jax_flax_module_matches():
    """A Flax NNX module (split into a pure function of its state; jax2onnx 0.17 cannot trace
    ``flax.linen`` modules, it patches their classes)."""
    pytest.importorskip("jax")
    pytest.importorskip("jax2onnx")
    nnx = pytest.importorskip("flax.nnx")
    import jax
    import jax.numpy as jnp

    from dlbench.spec import from_jax

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs)
            self.fc = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x):  # NHWC, Flax's layout
            return self.fc(jnp.mean(jax.nn.relu(self.conv(x)), axis=(1, 2)))

    graphdef, state = nnx.split(Net(nnx.Rngs(0)))

    def fn(state, x):
        return nnx.merge(graphdef, state)(x)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 10, 10, 3)).astype(np.float32)
    spec = from_jax(fn, state, x, layout="NHWC", name="flaxnet")
    assert spec.input_shape == (3, 10, 10) and spec.name == "flaxnet"
    x2 = rng.standard_normal((4, 10, 10, 3)).astype(np.float32)
    want = np.asarray(fn(state, x2))
    rec = compare(want, _reference(spec, x2.transpose(0, 3, 1, 2)), tolerance=1e-4)
    assert rec["ok"] and rec["argmax_agreement_strict"] == 1.0, rec
    with pytest.raises(ConfigError, match="layout"):
        from_jax(fn, state, x, layout="HWC")
