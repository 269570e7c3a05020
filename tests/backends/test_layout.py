"""Issue 23: channels-last inside the build (``dlbench.backends.common.layout``).

The layout plan is framework-free; the JAX build follows it. Outputs of the channels-last build
are compared with the canonical (NCHW) build and with the float64 NumPy reference, on zoo models
and on a graph that puts every layout-sensitive op after a convolution.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import dlbench
from dlbench.backends.common.layout import (
    CANON,
    NHWC,
    axis_of,
    const_to_nhwc,
    per_axis,
    physical_perm,
    plan_layouts,
)
from dlbench.model.zoo.builder import GraphBuilder


def every_layout_op() -> dlbench.ModelSpec:
    """A graph with each op the plan keeps NHWC (or maps axes for) after a convolution, mixed
    layouts joined, a constant operand, a spatial transpose and two graph outputs."""
    b = GraphBuilder("every_layout_op", (3, 12, 10), seed=3)
    x = b.act(b.bn(b.conv(b.input, 8, 3, name="c1")), "relu")
    y = b.add("pad", [x], {"pads": [1, 2, 0, 1, 2, 0], "value": 0.5}, name="pad")
    y = b.add("slice", [y], {"axes": [1, 2, 3], "starts": [1, 0, 1], "ends": [9, 12, 11]})
    y = b.add("max_pool", [y], {"kernel_size": 3, "stride": 2, "padding": 1}, name="mp")
    y = b.add("upsample", [y], {"scale_factor": [2, 2]}, name="up")
    z = b.add("avg_pool", [x], {"kernel_size": 3, "stride": 1, "padding": 1}, name="ap")
    z = b.add("concat", [y, z], {"axis": 1}, name="cat")
    # a canonical 4-D tensor (the spec transposes the input twice) joined with an NHWC one
    t = b.add("transpose", [b.input], {"perm": [0, 1, 3, 2]}, name="tr")
    t = b.add("transpose", [t], {"perm": [0, 1, 3, 2]}, name="tr2")
    t = b.add("pad", [t], {"pads": [0, 13, 0, 0, 0, 0]}, name="pad_c")
    z = b.add("add", [z, t], name="mixed")
    z = b.add("slice", [z], {"axes": [2], "starts": [0], "ends": [12], "steps": [2]}, name="s2")
    z = b.add("mul", [z], {}, {"other": b.rng.uniform(0.5, 1.5, (16, 1, 1))}, name="scale")
    z = b.add("add", [z], {}, {"other": np.array(0.25)}, name="shift")
    z = b.add("softmax", [z], {"axis": 1}, name="sm")
    k = b.add("reduce_mean", [z], {"axes": [2], "keepdims": True}, name="rm")
    k = b.add("flatten", [k], name="flat")
    g = b.add("reduce_mean", [z], {"axes": [2, 3]}, name="spatial_mean")
    h = b.add("global_avg_pool", [b.conv(z, 4, 1, bias=True, name="c2")], name="gap")
    out = b.add("concat", [g, h], {"axis": 1}, name="head")
    return b.build([out, k])


def _x(spec, n=2, seed=0):
    shape = spec.inputs[0].shape[1:]
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


# -- the plan (framework-free) -----------------------------------------------------------------


def test_resnet20_plan_is_nhwc_from_input_to_pool_with_no_transpose():
    spec = dlbench.zoo.get("resnet20")
    p = plan_layouts(spec)
    assert p.input == NHWC and p.transposes == 0
    convs = [rn.name for rn in spec.resolved() if rn.op == "conv2d"]
    assert all(p.out[c] == NHWC for c in convs)
    assert p.out["head"] == CANON  # after the global pool: (N, C)
    canonical = plan_layouts(spec, channels_last=False)
    assert canonical.input == CANON and not canonical.nhwc_nodes


def test_plan_of_models_without_images_stays_canonical():
    for name in ("mlp", "lstm"):
        p = plan_layouts(dlbench.zoo.get(name))
        assert p.input == CANON and not p.nhwc_nodes and p.transposes == 0


def test_plan_brings_tensors_back_where_a_consumer_needs_the_spec_layout():
    spec = every_layout_op()
    p = plan_layouts(spec)
    assert p.input == NHWC
    assert p.out["mp"] == NHWC and p.out["cat"] == NHWC and p.out["sm"] == NHWC
    # a spec transpose reads its input as stored and moves it straight to the canonical result
    assert p.wants["tr"] == (NHWC,) and p.out["tr"] == CANON
    assert p.out["mixed"] == NHWC and p.wants["mixed"] == (NHWC, NHWC)
    assert p.wants["flat"] == (CANON,) and p.out["rm"] == NHWC
    assert p.out["spatial_mean"] == CANON and p.wants["spatial_mean"] == (NHWC,)
    # conversions: pad_c -> NHWC for the add, rm -> canonical for the flatten
    assert p.transposes == 2
    assert plan_layouts(spec, channels_last=False).transposes == 0


def channels_last_block() -> dlbench.ModelSpec:
    """A ConvNeXt-style block: conv, permute to (N, H, W, C), layer norm and dense over
    channels, permute back, residual add."""
    b = GraphBuilder("cl_block", (8, 6, 5), seed=4)
    x = b.conv(b.input, 8, 3, groups=8, name="dw")
    y = b.add("transpose", [x], {"perm": [0, 2, 3, 1]}, name="to_hwc")
    y = b.dense(b.ln(y, name="ln"), 8, name="pw")
    y = b.add("transpose", [y], {"perm": [0, 3, 1, 2]}, name="to_chw")
    z = b.add("add", [x, y], name="res")
    odd = b.add("transpose", [z], {"perm": [0, 1, 3, 2]}, name="odd")  # a real move
    return b.build([b.add("flatten", [odd], name="flat")])


def test_permutes_around_a_channels_last_block_move_no_data():
    p = plan_layouts(channels_last_block())
    assert p.out["dw"] == NHWC and p.out["to_hwc"] == CANON and p.out["to_chw"] == NHWC
    assert p.out["res"] == NHWC and p.wants["odd"] == (NHWC,) and p.out["odd"] == CANON
    assert p.transposes == 0
    assert physical_perm([0, 2, 3, 1], NHWC, CANON) == (0, 1, 2, 3)
    assert physical_perm([0, 1, 3, 2], NHWC, CANON) == (0, 3, 2, 1)
    assert physical_perm([0, 1, 3, 2], NHWC, NHWC) == (0, 2, 1, 3)
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 4))  # stored NHWC: (N, H, W, C)
    canon = x.transpose(0, 3, 1, 2)
    for perm in ([0, 1, 3, 2], [0, 2, 3, 1], [0, 3, 2, 1]):
        for out in (CANON, NHWC):
            want = canon.transpose(perm)
            want = want.transpose(0, 2, 3, 1) if out == NHWC else want
            np.testing.assert_array_equal(x.transpose(physical_perm(perm, NHWC, out)), want)


def test_converting_a_tensor_whose_two_orders_are_one_memory_is_not_counted():
    """Squeeze-excitation: a pooled (N, C) reshaped to a canonical (N, C, 1, 1) scales an NHWC
    map; bringing it to NHWC moves no data. A (C, H, W) with both C and H * W above 1 does."""
    b = GraphBuilder("se", (4, 5, 6), seed=0)
    x = b.conv(b.input, 8, 3)
    s = b.add("reshape", [b.add("global_avg_pool", [x])], {"shape": [8, 1, 1]}, name="s")
    y = b.add("mul", [x, b.act(s, "sigmoid")], name="scaled")
    row = b.add("reduce_mean", [y], {"axes": [2], "keepdims": True}, name="row")  # (8, 1, 6)
    spec = b.build([b.add("flatten", [row], name="flat")])
    p = plan_layouts(spec)
    assert p.out["s"] == CANON and p.wants["scaled"] == (NHWC, NHWC)
    assert p.transposes == 1  # only the (8, 1, 6) row means before the flatten


def test_a_constant_that_cannot_broadcast_in_nhwc_keeps_the_op_canonical():
    b = GraphBuilder("const", (4, 5, 6), seed=0)
    x = b.conv(b.input, 4, 3)
    y = b.add("add", [x], {}, {"other": np.ones(6)}, name="row")  # broadcasts along W
    z = b.add("mul", [x], {}, {"other": np.ones((4, 1, 1))}, name="per_channel")
    spec = b.build([y, z])
    p = plan_layouts(spec)
    assert p.out["row"] == CANON and p.out["per_channel"] == NHWC


def test_axis_helpers():
    assert [axis_of(a, NHWC) for a in (0, 1, 2, 3, -3)] == [0, 3, 1, 2, 3]
    assert axis_of(1, CANON) == 1 and axis_of(2, NHWC, rank=3) == 2
    assert per_axis(["c", "h", "w"], NHWC) == ["h", "w", "c"]
    a = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(const_to_nhwc(a), a.transpose(1, 2, 0))
    assert const_to_nhwc(np.array([2.0])).shape == (1,)
    with pytest.raises(ValueError, match=r"Expected a scalar or a rank-3/4 constant. Received"):
        const_to_nhwc(np.ones(5))


# -- the JAX build -----------------------------------------------------------------------------


def _jax_outputs(spec, x, channels_last: bool):
    jax = pytest.importorskip("jax")
    from dlbench.backends.jax.backend import make_apply

    apply, params = make_apply(spec, arranged=True, channels_last=channels_last)
    if apply.input_layout == NHWC:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return np.asarray(jax.jit(apply)(params, x))


@pytest.mark.parametrize(
    "name",
    [
        "resnet20",
        "lenet5",
        "digits_cnn",
        pytest.param("mobilenet_v2", marks=pytest.mark.slow),
        pytest.param("vit_tiny", marks=pytest.mark.slow),
        pytest.param("fcos_mobilenet_v2", marks=pytest.mark.slow),
        pytest.param("retinanet_mobilenet_v2", marks=pytest.mark.slow),
        pytest.param("efficientnet_b0", marks=pytest.mark.slow),
        pytest.param("convnext_tiny", marks=pytest.mark.slow),
    ],
)
def test_jax_channels_last_build_equals_the_canonical_build(name):
    spec = dlbench.zoo.get(name)
    x = _x(spec, n=2 if spec.inputs[0].shape[-1] <= 64 else 1)
    want = _jax_outputs(spec, x, channels_last=False)
    got = _jax_outputs(spec, x, channels_last=True)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


def test_jax_channels_last_build_matches_the_reference_on_every_layout_op():
    spec = every_layout_op()
    x = _x(spec, n=3)
    ref = dlbench.get_backend("numpy").build(spec)
    want = ref.predict(x)
    got = _jax_outputs(spec, x, channels_last=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    model = dlbench.get_backend("jax").build(spec)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-5)


def test_jax_image_model_takes_nhwc_batches_from_to_device():
    pytest.importorskip("jax")
    spec = dlbench.zoo.get("lenet5")
    x = _x(spec, n=2)
    model = dlbench.get_backend("jax").build(spec)
    assert model.input_nhwc
    np.testing.assert_array_equal(np.asarray(model.to_device(x)), x.transpose(0, 2, 3, 1))
    want = dlbench.get_backend("numpy").build(spec).predict(x)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-5)


def test_jax_channels_last_block_matches_the_reference():
    pytest.importorskip("jax")
    spec = channels_last_block()
    x = _x(spec, n=2)
    want = dlbench.get_backend("numpy").build(spec).predict(x)
    np.testing.assert_allclose(_jax_outputs(spec, x, True), want, rtol=1e-4, atol=1e-5)


def test_jax_model_keeps_a_canonical_function_for_exporters():
    """The ONNX exporter traces ``model.fn`` (NCHW in) with ``model.params``: the same weights
    as the channels-last program, constants' NHWC copies kept apart (not counted as weights)."""
    pytest.importorskip("jax")
    spec = every_layout_op()
    x = _x(spec, n=2)
    model = dlbench.get_backend("jax").build(spec)
    assert model.layout == "NCHW" and model.input_nhwc
    np.testing.assert_allclose(
        np.asarray(model.fn(model.params, x)), model.predict(x), rtol=1e-5, atol=1e-6
    )
    assert "other_nhwc" in model.params["scale"]
    from dlbench.backends.jax.backend import make_apply

    canonical = make_apply(spec, arranged=True)[1]
    assert model.weight_bytes() == sum(a.nbytes for p in canonical.values() for a in p.values())


def test_a_wrong_nhwc_op_is_caught(monkeypatch):
    """The comparison above can fail: a softmax left on the canonical axis 1 (H in NHWC)
    computes something else with the same shape."""
    pytest.importorskip("jax")
    import jax

    from dlbench.backends.jax import ops

    spec = every_layout_op()
    x = _x(spec, n=3)
    want = dlbench.get_backend("numpy").build(spec).predict(x)
    monkeypatch.setitem(
        ops.NHWC_OPS, "softmax", lambda xs, p, rn: jax.nn.softmax(xs[0], axis=rn.attrs["axis"])
    )
    got = _jax_outputs(spec, x, channels_last=True)
    assert got.shape == want.shape
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_jax_channels_last_program_has_no_activation_transpose():
    jax = pytest.importorskip("jax")
    from dlbench.backends.jax.backend import make_apply

    spec = dlbench.zoo.get("resnet20")

    def transposes(channels_last: bool) -> int:
        apply, params = make_apply(spec, arranged=True, channels_last=channels_last)
        shape = (2, 32, 32, 3) if apply.input_layout == NHWC else (2, 3, 32, 32)
        hlo = jax.jit(apply).lower(params, np.zeros(shape, np.float32)).compile().as_text()
        return len(re.findall(r"= f32\[[^\]]*\]\{[^}]*\} (?:transpose|copy)\(", hlo))

    # the check can fail: the canonical program moves activations around its convolutions
    assert transposes(False) > 0
    assert transposes(True) == 0


# -- TensorFlow: NHWC inside already; convolutions pad as they read; a flat call ---------------


@pytest.mark.parametrize(
    "n, k, s, d", [(32, 3, 1, 1), (32, 3, 2, 1), (33, 3, 2, 1), (8, 5, 1, 2), (7, 1, 2, 1)]
)
def test_tensorflow_same_pads_are_what_same_padding_adds(n, k, s, d):
    tf = pytest.importorskip("tensorflow")
    from dlbench.backends.tensorflow.ops import same_pads

    x = tf.constant(np.random.default_rng(0).normal(size=(1, n, n + 1, 2)), tf.float32)
    f = tf.constant(np.random.default_rng(1).normal(size=(k, k, 2, 3)), tf.float32)
    t, b, l, r = same_pads((n, n + 1), (k, k), (s, s), (d, d))  # noqa: E741
    want = tf.nn.conv2d(x, f, [1, s, s, 1], "SAME", dilations=[1, d, d, 1])
    padded = tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]])
    got = tf.nn.conv2d(padded, f, [1, s, s, 1], "VALID", dilations=[1, d, d, 1])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    # the check can fail: one pixel moved from the end to the start is another result
    if b > t:
        moved = tf.pad(x, [[0, 0], [t + 1, b - 1], [l, r], [0, 0]])
        other = tf.nn.conv2d(moved, f, [1, s, s, 1], "VALID", dilations=[1, d, d, 1])
        assert not np.allclose(other.numpy(), want.numpy(), atol=1e-3)


def test_tensorflow_build_pads_inside_the_convolution_and_matches_the_reference():
    tf = pytest.importorskip("tensorflow")
    spec = dlbench.zoo.get("resnet20")
    model = dlbench.get_backend("tensorflow").build(spec)
    ops = {op.type for op in model._call.graph.get_operations()}
    pads = [op for op in model._call.graph.get_operations() if op.type in ("Pad", "PadV2")]
    assert "Conv2D" in ops
    # only the two stride-2 convolutions (pads (1, 1) where SAME adds (0, 1)) and the two
    # option-A shortcuts (a channel pad) still pad: the 17 stride-1 convolutions do not
    assert len(pads) == 4, [p.name for p in pads]
    x = _x(spec, n=2)
    want = dlbench.get_backend("numpy").build(spec).predict(x)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-4)
    assert isinstance(model.forward(model.to_device(x)), tf.Tensor)


def test_tensorflow_flat_call_equals_the_concrete_function():
    pytest.importorskip("tensorflow")
    spec = dlbench.zoo.get("lenet5")
    model = dlbench.get_backend("tensorflow").build(spec)
    x = model.to_device(_x(spec, n=3))
    assert model._run is not model._call  # the flat entry is in use
    np.testing.assert_array_equal(model.forward(x).numpy(), model._call(x).numpy())
