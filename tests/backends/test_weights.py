"""Shared weight transforms: each round-trips with its inverse; batch-norm folding is exact."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from dlbench.backends.common import weights as W
from dlbench.backends.numpy.ops import OPS as NUMPY_OPS
from dlbench.model.spec import ModelSpec, Node, TensorInfo

RNG = np.random.default_rng(0)


def _a(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


PAIRS = {
    "nchw<->nhwc": (W.nchw_to_nhwc, W.nhwc_to_nchw, _a(2, 3, 4, 5)),
    "oihw<->hwio": (W.oihw_to_hwio, W.hwio_to_oihw, _a(6, 3, 3, 2)),
    "oihw<->depthwise": (lambda w: W.oihw_to_depthwise(w, 4), W.depthwise_to_oihw, _a(8, 1, 3, 2)),
    "dense<->kernel": (W.dense_to_kernel, W.kernel_to_dense, _a(5, 7)),
    "gates ifgo<->iofc": (W.gates_ifgo_to_iofc, W.gates_iofc_to_ifgo, _a(12, 5)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_transform_and_inverse_round_trip(name: str) -> None:
    fwd, inv, a = PAIRS[name]
    native = fwd(a)
    np.testing.assert_array_equal(inv(native), a)
    np.testing.assert_array_equal(fwd(inv(native)), native)


def test_a_wrong_inverse_is_caught() -> None:
    a = _a(6, 3, 3, 2)
    assert not np.array_equal(W.oihw_to_hwio(a).transpose(3, 2, 1, 0), a)  # not the inverse


def test_layouts_mean_what_they_say() -> None:
    x = _a(2, 3, 4, 5)
    assert W.nchw_to_nhwc(x)[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert W.nchw_to_nhwc(x[0]).shape == (3, 4, 5)  # other ranks unchanged
    w = _a(6, 3, 3, 2)  # O, I, H, W
    assert W.oihw_to_hwio(w)[2, 1, 0, 5] == w[5, 0, 2, 1]
    d = _a(8, 1, 3, 2)  # 4 channels, multiplier 2: output channel c*2 + m
    assert W.oihw_to_depthwise(d, 4)[1, 0, 3, 1] == d[3 * 2 + 1, 0, 1, 0]
    k = _a(5, 7)
    x2 = _a(3, 7)
    np.testing.assert_allclose(x2 @ W.dense_to_kernel(k), x2 @ k.T)
    g = np.repeat(np.arange(4.0), 2)[:, None]  # gate blocks i, f, g, o
    np.testing.assert_array_equal(W.gates_ifgo_to_iofc(g)[::2, 0], [0, 3, 1, 2])


def test_conv_filter_layout_picks_depthwise() -> None:
    fwd, back = W.conv_filter_layout((8, 1, 3, 3), 4)
    assert fwd(np.zeros((8, 1, 3, 3))).shape == (3, 3, 4, 2) and back is W.depthwise_to_oihw
    assert W.conv_filter_layout((8, 2, 3, 3), 2) == (W.oihw_to_hwio, W.hwio_to_oihw)
    assert W.conv_filter_layout((8, 1, 3, 3), 1) == (W.oihw_to_hwio, W.hwio_to_oihw)


def _bn_node(c: int, eps: float):
    params = {
        "bn.weight": RNG.uniform(0.5, 2.0, c).astype(np.float32),
        "bn.bias": RNG.standard_normal(c).astype(np.float32),
        "bn.mean": RNG.standard_normal(c).astype(np.float32),
        "bn.var": RNG.uniform(0.1, 3.0, c).astype(np.float32),
    }
    roles = {r: f"bn.{r}" for r in ("weight", "bias", "mean", "var")}
    node = Node("bn", "batch_norm", ["x"], {"eps": eps}, roles)
    spec = ModelSpec("bn", [TensorInfo("x", (None, c, 4, 4))], ["bn"], [node], params)
    return spec.validate().resolved()[0]


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_folding_equals_the_unfolded_batch_norm_in_float64(eps: float) -> None:
    rn = _bn_node(6, eps)
    p = {k: v.astype(np.float64) for k, v in rn.params.items()}
    x = _a(3, 6, 4, 4)
    want = NUMPY_OPS["batch_norm"]([x], p, rn)  # (x - mean) / sqrt(var + eps) * w + b
    scale, shift = W.fold_batch_norm(**rn.params, eps=eps)
    assert scale.dtype == shift.dtype == np.float64
    got = x * scale[None, :, None, None] + shift[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    wrong, _ = W.fold_batch_norm(**rn.params, eps=eps * 10)  # a wrong fold is caught
    bad = x * wrong[None, :, None, None] + shift[None, :, None, None]
    assert not np.allclose(bad, want, rtol=1e-13, atol=1e-13)


def test_lstm_bias_is_summed_in_float64() -> None:
    a, b = np.float32([1e8, 1.0]), np.float32([1.0, 1e-8])
    got = W.sum_lstm_bias(a, b)
    np.testing.assert_array_equal(got, np.float64(a) + np.float64(b))
    assert not np.array_equal(got, (a + b).astype(np.float64))  # float32 would lose the 1


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="no tensorflow")
@pytest.mark.parametrize(
    "op_case",
    ["conv2d", "conv2d_groups", "conv2d_depthwise", "conv2d_depthwise_mult", "dense", "dense_3d"]
    + ["multi_head_attention", "lstm", "layer_norm"],
)
def test_tensorflow_weights_map_back_to_the_spec(op_case: str) -> None:
    """TensorFlow's build-time layout (``prepare``) and the inverse its trainer exports with."""
    from dlbench.backends.tensorflow.ops import prepare, weight_layout
    from dlbench.testing import OP_CASES

    case = next(c for c in OP_CASES if c.id == op_case)
    rn = next(n for n in case.spec().resolved() if n.params)
    native = prepare(rn)
    layout = weight_layout(rn)
    assert layout, rn.op
    for role, (key, _, back) in layout.items():
        np.testing.assert_array_equal(back(native[key]), rn.params[role])
