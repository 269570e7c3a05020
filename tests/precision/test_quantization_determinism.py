"""int8 post-training quantization: the same calibration data gives the same quantized weights,
other data gives other weights (the calibration is really used), and the quantized model still
predicts like the float64 reference. One test per int8 path; each skips without its framework
(torch and litert are ``slow``: run them with ``-m slow``)."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import datasets, zoo
from dlbench.execution.precision import calibration_batch


@pytest.fixture(scope="module")
def digits() -> tuple:
    train = datasets.load("digits", split="train")
    test = datasets.load("digits", split="test")
    batch = test.get_batch(np.arange(120))
    spec = zoo.get("digits_cnn")
    from dlbench import get_backend

    ref = get_backend("numpy").build(spec).predict(batch.inputs)
    return spec, train, batch.inputs, ref


def _agreement(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.mean(ref.argmax(1) == out.argmax(1)))


def test_calibration_batch_is_the_same_data(digits) -> None:
    _, train, _, _ = digits
    a, b = calibration_batch(train, 32, seed=0), calibration_batch(train, 32, seed=0)
    assert a.dtype == np.float32 and a.shape == (32, 1, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, calibration_batch(train, 32, seed=1))


def test_onnxruntime_static_int8(digits) -> None:
    pytest.importorskip("onnxruntime")
    from dlbench.backends.onnxruntime.ops import to_onnx
    from dlbench.backends.onnxruntime.precision import quantize

    spec, train, x, ref = digits
    proto = to_onnx(spec)
    calib = calibration_batch(train, 64, seed=0)
    a, info = quantize(proto, "static", calib)
    b, _ = quantize(proto, "static", calib.copy())
    assert a.SerializeToString() == b.SerializeToString()
    assert info["per_channel"] and info["format"] == "QDQ"
    other, _ = quantize(proto, "static", calibration_batch(train, 64, seed=0) * 0.25)
    assert other.SerializeToString() != a.SerializeToString()  # activation scales follow data
    from dlbench import get_backend
    from dlbench.backends.onnxruntime.precision import build_precision

    model = build_precision(
        get_backend("onnxruntime", precision="int8"), spec, "cpu", "int8", calib
    )
    assert model.settings()["precision_in_force"] == "int8"
    assert model.weight_bytes() < 0.4 * spec.stats()["params"] * 4  # int8 weights
    assert _agreement(ref, model.predict(x)) >= 0.95


def test_onnxruntime_dynamic_int8_needs_no_calibration(digits) -> None:
    pytest.importorskip("onnxruntime")
    from dlbench.backends.onnxruntime.ops import to_onnx
    from dlbench.backends.onnxruntime.precision import quantize

    spec, _, _, _ = digits
    a, info = quantize(to_onnx(spec), "dynamic", None)
    b, _ = quantize(to_onnx(spec), "dynamic", None)
    assert info["method"] == "dynamic" and a.SerializeToString() == b.SerializeToString()


@pytest.mark.slow  # torch import + three calibrations: ~6 s on a quiet 2-core machine
def test_torch_fx_int8(digits) -> None:
    torch = pytest.importorskip("torch")
    from dlbench.backends.torch.precision import quantize

    spec, train, x, ref = digits
    calib = calibration_batch(train, 64, seed=0)
    a, info = quantize(spec, "static", calib)
    b, _ = quantize(spec, "static", calib.copy())
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        va, vb = sa[k], sb[k]
        if isinstance(va, torch.Tensor) and va.is_quantized:
            assert torch.equal(va.int_repr(), vb.int_repr()) and torch.equal(
                va.q_per_channel_scales(), vb.q_per_channel_scales()
            )
        elif isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), k
    c, _ = quantize(spec, "static", calib * 0.25)
    assert not torch.equal(sa["conv1_input_scale_0"], c.state_dict()["conv1_input_scale_0"])
    with torch.inference_mode():
        out = a(torch.from_numpy(x)).numpy()
    assert _agreement(ref, out) >= 0.95
    assert "quantize_fx" in info["api"]


@pytest.mark.slow  # tensorflow import + three conversions: ~10 s on a quiet 2-core machine
def test_litert_full_integer(digits) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from dlbench import get_backend

    spec, train, x, ref = digits
    calib = calibration_batch(train, 32, seed=0)
    backend = get_backend("litert", precision="int8", isolate_converter=False)
    a = backend.build(spec, calibration=calib)
    b = backend.build(spec, calibration=calib.copy())
    assert a.blob == b.blob
    assert backend.build(spec, calibration=calib * 0.25).blob != a.blob
    assert a.settings()["method"] == "static" and a.settings()["precision_in_force"] == "int8"
    assert a.weight_bytes() < 0.4 * spec.stats()["params"] * 4
    assert _agreement(ref, a.predict(x)) >= 0.95
