"""Sequence ops: layer_norm, multi-head attention, LSTM."""

from __future__ import annotations

from dlbench.model.ops.schema import (
    Attr,
    Ctx,
    OpSchema,
    Shape,
    _op,
)


def _infer_ln(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    ctx.expect_param("weight", (shape[-1],))
    ctx.expect_param("bias", (shape[-1],))
    return shape


_op(
    OpSchema(
        "layer_norm",
        attrs={"eps": Attr("float", 1e-5)},
        params=("weight", "bias"),
        infer=_infer_ln,
        flops_per_output=7,
        doc="layer normalisation over the last axis",
    )
)


def _infer_mha(ctx: Ctx) -> Shape:
    t, d = ctx.expect_rank(0, 2)
    h = ctx.attrs["num_heads"]
    if h < 1 or d % h:
        raise ctx.fail(
            f"expected `num_heads` to divide the embedding size {d}. Received: num_heads={h}"
        )
    ctx.expect_param("in_weight", (3 * d, d))
    ctx.expect_param("in_bias", (3 * d,))
    ctx.expect_param("out_weight", (d, d))
    ctx.expect_param("out_bias", (d,))
    return (t, d)


_op(
    OpSchema(
        "multi_head_attention",
        attrs={"num_heads": Attr("int")},
        params=("in_weight", "in_bias", "out_weight", "out_bias"),
        infer=_infer_mha,
        macs=lambda ctx, out: out[0] * out[1] * 4 * out[1] + 2 * out[0] * out[0] * out[1],
        flops_per_output=5,
        doc="self-attention on (N, T, D); in_weight stacks q, k, v as (3D, D) (PyTorch layout)",
    )
)


def _infer_lstm(ctx: Ctx) -> Shape:
    t, f = ctx.expect_rank(0, 2)
    h = ctx.attrs["hidden_size"]
    if h < 1:
        raise ctx.fail(f"expected positive `hidden_size`. Received: {h}")
    ctx.expect_param("weight_ih", (4 * h, f))
    ctx.expect_param("weight_hh", (4 * h, h))
    ctx.expect_param("bias_ih", (4 * h,))
    ctx.expect_param("bias_hh", (4 * h,))
    return (t, h) if ctx.attrs["return_sequences"] else (h,)


_op(
    OpSchema(
        "lstm",
        attrs={"hidden_size": Attr("int"), "return_sequences": Attr("bool", False)},
        params=("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
        infer=_infer_lstm,
        macs=lambda ctx, out: (
            ctx.in_shapes[0][0]
            * 4
            * ctx.attrs["hidden_size"]
            * (ctx.in_shapes[0][1] + ctx.attrs["hidden_size"])
        ),
        doc="one-layer LSTM over (N, T, F), unrolled; PyTorch weight layout, gates i, f, g, o",
    )
)
