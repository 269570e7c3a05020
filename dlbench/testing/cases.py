"""Single-op ModelSpecs covering every op of :mod:`dlbench.model.ops` and its attribute variants.

Each :class:`OpCase` builds a tiny spec (one or a few nodes, small shapes) so that a backend's
implementation of one op can be checked against the NumPy reference in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder


@dataclass(frozen=True)
class OpCase:
    """A named single-op spec, its input scale, and the op(s) it covers."""

    id: str
    op: str
    input_shape: tuple[int, ...]
    build: Callable[[GraphBuilder], str]
    input_scale: float = 1.0
    input_dtype: str = "float32"

    def spec(self, seed: int = 0) -> ModelSpec:
        b = GraphBuilder(f"op_{self.id}", self.input_shape, seed, self.input_dtype)
        return b.build([self.build(b)], {"task": "op-test", "op": self.op})

    def batch(self, n: int = 3, seed: int = 1) -> np.ndarray:
        """The case's input batch: standard normal x ``input_scale`` (float32), or valid
        token ids (int64) for an integer input."""
        from dlbench.analysis.parity import make_input

        x = make_input(self.spec(), n, seed)
        return x if x.dtype.kind == "i" else (x * self.input_scale).astype(np.float32)


def _conv_impl(b: GraphBuilder, kw: dict) -> str:
    out, k = kw.pop("out", 4), kw.pop("k", 3)
    return b.conv(b.input, out, k, **kw)


def _act(op: str, **attrs) -> Callable[[GraphBuilder], str]:
    return lambda b: b.act(b.input, op, **attrs)


def _pool(op: str, **attrs) -> Callable[[GraphBuilder], str]:
    return lambda b: b.add(op, [b.input], attrs)


def _node(op: str, **attrs) -> Callable[[GraphBuilder], str]:
    return lambda b: b.add(op, [b.input], attrs)


def _other(b: GraphBuilder, shape: tuple[int, ...]):
    return b.rng.normal(0, 1, shape)


def _positive(b: GraphBuilder, x: str) -> str:
    """sigmoid(x) + 0.25: in [0.25, 1.25], for ops defined (and well conditioned) above 0."""
    s = b.act(x, "sigmoid")
    return b.add("add", [s], {}, {"other": [0.25]})


C = (3, 9, 9)  # an odd-sized image, so stride/padding/ceil corner cases show up

OP_CASES: list[OpCase] = [
    OpCase("conv2d", "conv2d", C, lambda b: _conv_impl(b, {"bias": True})),
    OpCase("conv2d_valid", "conv2d", C, lambda b: _conv_impl(b, {"padding": "valid", "k": 2})),
    OpCase(
        "conv2d_same_stride2",
        "conv2d",
        C,
        lambda b: _conv_impl(b, {"padding": "same", "stride": 2}),
    ),
    OpCase(
        "conv2d_same_even_kernel", "conv2d", C, lambda b: _conv_impl(b, {"padding": "same", "k": 4})
    ),
    OpCase("conv2d_asym_pad", "conv2d", C, lambda b: _conv_impl(b, {"padding": [1, 0, 2, 1]})),
    OpCase("conv2d_dilation", "conv2d", C, lambda b: _conv_impl(b, {"dilation": 2})),
    OpCase(
        "conv2d_stride_pair",
        "conv2d",
        C,
        lambda b: b.add(
            "conv2d",
            [b.input],
            {"stride": [2, 1], "padding": 1},
            {"weight": b.he_normal((5, 3, 3, 3), 27), "bias": b.uniform((5,), 0.2)},
        ),
    ),
    OpCase("conv2d_groups", "conv2d", (4, 8, 8), lambda b: _conv_impl(b, {"out": 6, "groups": 2})),
    OpCase(
        "conv2d_depthwise", "conv2d", (4, 8, 8), lambda b: _conv_impl(b, {"out": 4, "groups": 4})
    ),
    OpCase(
        "conv2d_depthwise_mult",
        "conv2d",
        (4, 8, 8),
        lambda b: _conv_impl(b, {"out": 8, "groups": 4, "stride": 2}),
    ),
    OpCase("batch_norm", "batch_norm", (3, 5, 5), lambda b: b.bn(b.input)),
    OpCase("batch_norm_2d", "batch_norm", (6,), lambda b: b.bn(b.input)),
    OpCase("batch_norm_after_conv", "batch_norm", C, lambda b: b.bn(_conv_impl(b, {}))),
    OpCase("dense", "dense", (7,), lambda b: b.dense(b.input, 5)),
    OpCase("dense_no_bias", "dense", (7,), lambda b: b.dense(b.input, 5, bias=False)),
    OpCase("dense_3d", "dense", (4, 7), lambda b: b.dense(b.input, 5)),
    OpCase("relu", "relu", (3, 5, 5), _act("relu")),
    OpCase("relu6", "relu6", (3, 5, 5), _act("relu6"), input_scale=5.0),
    OpCase("gelu", "gelu", (3, 5, 5), _act("gelu"), input_scale=3.0),
    OpCase("gelu_tanh", "gelu", (3, 5, 5), _act("gelu", approximate="tanh"), input_scale=3.0),
    OpCase(  # inputs around -2.5, where tanh-GELU is off by ~3e-4 of the output scale (> 1e-4)
        "gelu_tail",
        "gelu",
        (3, 5, 5),
        lambda b: b.act(b.add("add", [b.input], {}, {"other": np.full((3, 1, 1), -2.5)}), "gelu"),
    ),
    OpCase("silu", "silu", (3, 5, 5), _act("silu"), input_scale=3.0),
    OpCase("sigmoid", "sigmoid", (3, 5, 5), _act("sigmoid"), input_scale=3.0),
    OpCase("tanh", "tanh", (3, 5, 5), _act("tanh"), input_scale=3.0),
    OpCase("hard_swish", "hard_swish", (3, 5, 5), _act("hard_swish"), input_scale=4.0),
    OpCase("softmax", "softmax", (6,), _act("softmax"), input_scale=3.0),
    OpCase("softmax_channels", "softmax", (3, 4, 4), _act("softmax", axis=1)),
    OpCase(
        "softmax_after_conv", "softmax", C, lambda b: b.act(_conv_impl(b, {}), "softmax", axis=1)
    ),
    OpCase("max_pool", "max_pool", (3, 8, 8), _pool("max_pool", kernel_size=2)),
    OpCase(
        "max_pool_pad_ceil",
        "max_pool",
        C,
        _pool("max_pool", kernel_size=3, stride=2, padding=1, ceil_mode=True),
    ),
    OpCase(
        "max_pool_ceil",
        "max_pool",
        (2, 8, 8),
        _pool("max_pool", kernel_size=3, stride=2, ceil_mode=True),
    ),
    OpCase("avg_pool", "avg_pool", (3, 8, 8), _pool("avg_pool", kernel_size=2)),
    OpCase(
        "avg_pool_pad_ceil",
        "avg_pool",
        C,
        _pool("avg_pool", kernel_size=3, stride=2, padding=1, ceil_mode=True),
    ),
    OpCase(
        "avg_pool_exclude_pad",
        "avg_pool",
        C,
        _pool("avg_pool", kernel_size=3, stride=2, padding=1, count_include_pad=False),
    ),
    OpCase(
        "avg_pool_ceil_rect",
        "avg_pool",
        (2, 7, 8),
        _pool("avg_pool", kernel_size=[3, 2], stride=[2, 3], ceil_mode=True),
    ),
    OpCase(
        "global_avg_pool",
        "global_avg_pool",
        (3, 5, 6),
        lambda b: b.add("global_avg_pool", [b.input]),
    ),
    OpCase("flatten", "flatten", (3, 4, 5), lambda b: b.flatten(b.input)),
    OpCase("flatten_after_conv", "flatten", C, lambda b: b.flatten(_conv_impl(b, {}))),
    OpCase(
        "reshape", "reshape", (3, 4, 4), lambda b: b.add("reshape", [b.input], {"shape": [4, -1]})
    ),
    OpCase(
        "transpose",
        "transpose",
        (3, 4, 5),
        lambda b: b.add("transpose", [b.input], {"perm": [0, 2, 3, 1]}),
    ),
    OpCase("add", "add", (3, 5, 5), lambda b: b.add("add", [b.input, b.act(b.input, "sigmoid")])),
    OpCase(
        "add_param",
        "add",
        (3, 5, 5),
        lambda b: b.add("add", [b.input], {}, {"other": _other(b, (3, 1, 1))}),
    ),
    OpCase(
        "add_mixed_layout", "add", C, lambda b: b.add("add", [b.input, _conv_impl(b, {"out": 3})])
    ),
    OpCase("mul", "mul", (3, 5, 5), lambda b: b.add("mul", [b.input, b.act(b.input, "tanh")])),
    OpCase(
        "mul_param",
        "mul",
        (4, 6),
        lambda b: b.add("mul", [b.input], {}, {"other": _other(b, (6,))}),
    ),
    OpCase(  # the parameter grows the input: (1, 4, 4) * (3, 1, 1) -> (3, 4, 4)
        "mul_param_broadcast",
        "mul",
        (1, 4, 4),
        lambda b: b.add("mul", [b.input], {}, {"other": _other(b, (3, 1, 1))}),
    ),
    OpCase("div", "div", (3, 5, 5), lambda b: b.add("div", [b.input, _positive(b, b.input)])),
    OpCase(
        "div_param",
        "div",
        (4, 6),
        lambda b: b.add("div", [b.input], {}, {"other": b.rng.uniform(0.5, 2.0, (6,))}),
    ),
    OpCase("sqrt", "sqrt", (3, 5, 5), lambda b: b.act(_positive(b, b.input), "sqrt")),
    OpCase(
        "reciprocal", "reciprocal", (3, 5, 5), lambda b: b.act(_positive(b, b.input), "reciprocal")
    ),
    OpCase("erf", "erf", (3, 5, 5), _act("erf"), input_scale=2.0),
    OpCase(
        "concat", "concat", (3, 5, 5), lambda b: b.add("concat", [b.input, b.act(b.input, "relu")])
    ),
    OpCase(
        "concat_width",
        "concat",
        (3, 5, 5),
        lambda b: b.add("concat", [b.input, b.act(b.input, "tanh")], {"axis": 3}),
    ),
    OpCase(
        "concat_after_conv",
        "concat",
        C,
        lambda b: b.add("concat", [_conv_impl(b, {}), _conv_impl(b, {"out": 2})]),
    ),
    OpCase("layer_norm", "layer_norm", (5, 8), lambda b: b.ln(b.input), input_scale=2.0),
    OpCase(
        "multi_head_attention",
        "multi_head_attention",
        (6, 8),
        lambda b: b.add(
            "multi_head_attention",
            [b.input],
            {"num_heads": 2},
            {
                "in_weight": b.xavier((24, 8)),
                "in_bias": b.uniform((24,), 0.1),
                "out_weight": b.xavier((8, 8)),
                "out_bias": b.uniform((8,), 0.1),
            },
        ),
    ),
    OpCase(
        "matmul",
        "matmul",
        (4, 5),
        lambda b: b.add("matmul", [b.input, b.add("transpose", [b.input], {"perm": [0, 2, 1]})]),
    ),
    OpCase("pad", "pad", (3, 5, 5), _node("pad", pads=[1, 2, 0, 1, 2, 0])),
    OpCase("pad_value_2d", "pad", (4, 6), _node("pad", pads=[0, 1, 3, 2], value=-1.5)),
    OpCase(
        "pad_channels_after_conv",  # NHWC inside TensorFlow
        "pad",
        C,
        lambda b: b.add("pad", [_conv_impl(b, {})], {"pads": [2, 3, 1, 0, 0, 1]}),
    ),
    OpCase("slice", "slice", C, _node("slice", axes=[2, 3], steps=[2, 2])),
    OpCase(
        "slice_negative_bounds",
        "slice",
        (4, 6, 7),
        _node("slice", axes=[-1, 1], starts=[-5, 1], ends=[-1, 100], steps=[3, 2]),
    ),
    OpCase(
        "slice_after_conv",  # NHWC inside TensorFlow
        "slice",
        C,
        lambda b: b.add(
            "slice",
            [_conv_impl(b, {"out": 6})],
            {"axes": [1, 3], "starts": [1, 1], "steps": [2, 3]},
        ),
    ),
    OpCase("slice_2d", "slice", (4, 6), _node("slice", axes=[2], starts=[2], ends=[5])),
    OpCase(
        "option_a_shortcut",  # He et al. CIFAR ResNet: x[:, :, ::2, ::2], zero channel padding
        "pad",
        (4, 8, 8),
        lambda b: b.add(
            "add",
            [
                _conv_impl(b, {"out": 8, "stride": 2}),
                b.add(
                    "pad",
                    [b.add("slice", [b.input], {"axes": [2, 3], "steps": [2, 2]})],
                    {"pads": [2, 2, 0, 0, 0, 0]},
                ),
            ],
        ),
    ),
    OpCase("dropout", "dropout", (3, 5, 5), _act("dropout", rate=0.5)),
    OpCase(
        "upsample",
        "upsample",
        (3, 4, 4),
        lambda b: b.add("upsample", [b.input], {"scale_factor": 2}),
    ),
    OpCase(
        "upsample_rect",
        "upsample",
        (3, 4, 5),
        lambda b: b.add("upsample", [b.input], {"scale_factor": [2, 3]}),
    ),
    OpCase("lstm", "lstm", (6, 5), lambda b: _lstm(b, False)),
    OpCase("lstm_sequences", "lstm", (6, 5), lambda b: _lstm(b, True)),
    OpCase(  # token ids (N, 5) -> rows of an (11, 6) table, then a dense over them
        "embedding",
        "embedding",
        (5,),
        lambda b: b.dense(b.add("embedding", [b.input], {}, {"weight": _other(b, (11, 6))}), 3),
        input_dtype="int64",
    ),
    OpCase(  # ids (N, 2, 3) reshaped and transposed (integers pass through) -> a (7, 2, 3) table
        "embedding_reshaped_ids_3d_table",
        "embedding",
        (2, 3),
        lambda b: b.add(
            "embedding",
            [
                b.add(
                    "transpose",
                    [b.add("reshape", [b.input], {"shape": [3, 2]})],
                    {"perm": [0, 2, 1]},
                )
            ],
            {},
            {"weight": _other(b, (7, 2, 3))},
        ),
        input_dtype="int64",
    ),
    OpCase(
        "reduce_mean",
        "reduce_mean",
        (3, 4, 5),
        lambda b: b.add("reduce_mean", [b.input], {"axes": [2, 3], "keepdims": True}),
    ),
    OpCase(
        "reduce_mean_last",
        "reduce_mean",
        (4, 6),
        lambda b: b.add("reduce_mean", [b.input], {"axes": [-1]}),
    ),
]


def _lstm(b: GraphBuilder, seq: bool) -> str:
    h, f = 4, b.shape(b.input)[-1]
    return b.add(
        "lstm",
        [b.input],
        {"hidden_size": h, "return_sequences": seq},
        {
            "weight_ih": b.uniform((4 * h, f), 0.5),
            "weight_hh": b.uniform((4 * h, h), 0.5),
            "bias_ih": b.uniform((4 * h,), 0.5),
            "bias_hh": b.uniform((4 * h,), 0.5),
        },
    )
