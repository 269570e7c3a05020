"""Layers with weights and their activations: conv2d, batch_norm, dense, activations, softmax."""

from __future__ import annotations

from dlbench.model.ops.schema import (
    Attr,
    Ctx,
    OpSchema,
    Shape,
    _axis,
    _numel,
    _op,
    conv_out,
    same_pads,
)


def _infer_conv(ctx: Ctx) -> Shape:
    c, h, w = ctx.expect_rank(0, 3)
    a = ctx.attrs
    wshape = ctx.param_shapes["weight"]
    if len(wshape) != 4:
        raise ctx.fail(f"expected `weight` to be OIHW (rank 4). Received shape {tuple(wshape)}")
    o, ci, kh, kw = wshape
    g = a["groups"]
    if g < 1 or c % g or o % g:
        raise ctx.fail(
            f"expected `groups` to divide input channels ({c}) and output channels ({o}). "
            f"Received: groups={g}"
        )
    if ci * g != c:
        raise ctx.fail(
            f"expected `weight` shape ({o}, {c // g}, kh, kw) for {c} input channels and "
            f"groups={g}. Received: {tuple(wshape)}"
        )
    ctx.expect_param("bias", (o,))
    (sh, sw), (dh, dw) = a["stride"], a["dilation"]
    if min(sh, sw, dh, dw) < 1:
        raise ctx.fail(
            f"expected positive stride and dilation. Received: {a['stride']}, {a['dilation']}"
        )
    pad = a["padding"]
    if pad == "same":
        pads = [*same_pads(h, kh, sh, dh), *same_pads(w, kw, sw, dw)]
    elif pad == "valid":
        pads = [0, 0, 0, 0]
    else:
        pads = list(pad)
        if min(pads) < 0:
            raise ctx.fail(f"expected non-negative padding. Received: padding={pad}")
    a["pads"] = pads  # resolved (top, bottom, left, right), for the backends
    oh = conv_out(h, kh, sh, dh, pads[0], pads[1])
    ow = conv_out(w, kw, sw, dw, pads[2], pads[3])
    if oh < 1 or ow < 1:
        raise ctx.fail(f"kernel {kh}x{kw} does not fit input {h}x{w} with padding {pads}")
    return (o, oh, ow)


_op(
    OpSchema(
        "conv2d",
        attrs={
            "stride": Attr("pair", [1, 1]),
            "padding": Attr("padding", [0, 0, 0, 0]),
            "dilation": Attr("pair", [1, 1]),
            "groups": Attr("int", 1),
        },
        params=("weight",),
        optional_params=("bias",),
        infer=_infer_conv,
        macs=lambda ctx, out: _numel(out) * _numel(ctx.param_shapes["weight"][1:]),
        doc="2-D convolution, OIHW weight, optional bias; padding int/pair/4-tuple/'same'/'valid'.",
    )
)


def _infer_bn(ctx: Ctx) -> Shape:
    shape = ctx.expect_rank(0, (1, 2, 3))
    for role in ("weight", "bias", "mean", "var"):
        ctx.expect_param(role, (shape[0],))
    if ctx.attrs["eps"] <= 0:
        raise ctx.fail(f"expected `eps` > 0. Received: eps={ctx.attrs['eps']}")
    return shape


_op(
    OpSchema(
        "batch_norm",
        attrs={"eps": Attr("float", 1e-5)},
        params=("weight", "bias", "mean", "var"),
        buffers=("mean", "var"),
        infer=_infer_bn,
        flops_per_output=2,
        doc="Inference batch norm over axis 1 with running mean/var.",
    )
)


def _infer_dense(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    if not shape:
        raise ctx.fail("expected an input of rank >= 2 (batch included)")
    w = ctx.param_shapes["weight"]
    if len(w) != 2 or w[1] != shape[-1]:
        raise ctx.fail(
            f"expected `weight` of shape (out, {shape[-1]}) for input features {shape[-1]}. "
            f"Received: {tuple(w)}"
        )
    ctx.expect_param("bias", (w[0],))
    return (*shape[:-1], w[0])


_op(
    OpSchema(
        "dense",
        params=("weight",),
        optional_params=("bias",),
        infer=_infer_dense,
        macs=lambda ctx, out: _numel(out) * ctx.param_shapes["weight"][1],
        doc="y = x @ weight.T + bias over the last axis; weight is (out, in).",
    )
)

for _name, _flops, _doc in [
    ("relu", 1, "max(x, 0)"),
    ("relu6", 2, "min(max(x, 0), 6)"),
    ("silu", 4, "x * sigmoid(x)"),
    ("sigmoid", 3, "1 / (1 + exp(-x))"),
    ("tanh", 3, "tanh(x)"),
    ("hard_swish", 4, "x * relu6(x + 3) / 6"),
    ("dropout", 0, "identity at inference"),
    ("sqrt", 1, "square root (NaN below 0)"),
    ("reciprocal", 1, "1 / x"),
    ("erf", 8, "the error function, 2/sqrt(pi) * integral of exp(-t**2) from 0 to x"),
]:
    _op(
        OpSchema(
            _name,
            attrs={"rate": Attr("float", 0.0)} if _name == "dropout" else {},
            flops_per_output=_flops,
            doc=_doc,
        )
    )

_op(
    OpSchema(
        "gelu",
        attrs={"approximate": Attr("str", "none", ("none", "tanh"))},
        flops_per_output=8,
        doc="exact (erf) or tanh-approximated GELU",
    )
)


def _infer_softmax(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    ctx.attrs["axis"] = _axis(ctx, ctx.attrs["axis"], len(shape) + 1)
    return shape


_op(
    OpSchema(
        "softmax",
        attrs={"axis": Attr("int", -1)},
        infer=_infer_softmax,
        flops_per_output=5,
        doc="softmax along a non-batch axis (default the last)",
    )
)
