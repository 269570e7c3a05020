"""Spatial ops on NCHW maps: pools, global average pool, flatten, upsample, pad."""

from __future__ import annotations

from dlbench.model.ops.schema import (
    Attr,
    Ctx,
    OpSchema,
    Shape,
    _numel,
    _op,
    pool_geometry,
)


def _infer_pool(ctx: Ctx) -> Shape:
    c, h, w = ctx.expect_rank(0, 3)
    a = ctx.attrs
    k = a["kernel_size"]
    s = a["stride"] if a["stride"] is not None else list(k)
    a["stride"] = s
    p = a["padding"]
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ctx.fail(f"expected positive kernel/stride and non-negative padding. Received: {a}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ctx.fail(
            f"expected padding at most half the kernel size. Received: padding={p}, kernel_size={k}"
        )
    oh, eh = pool_geometry(h, k[0], s[0], p[0], a["ceil_mode"])
    ow, ew = pool_geometry(w, k[1], s[1], p[1], a["ceil_mode"])
    if oh < 1 or ow < 1:
        raise ctx.fail(f"kernel {k} does not fit input {h}x{w}")
    # explicit (top, bottom, left, right) padding that makes a VALID pool give the same windows
    a["pads"] = [p[0], p[0] + eh, p[1], p[1] + ew]
    return (c, oh, ow)


_POOL_ATTRS = {
    "kernel_size": Attr("pair"),
    "stride": Attr("pair", None),
    "padding": Attr("pair", [0, 0]),
    "ceil_mode": Attr("bool", False),
}
_op(
    OpSchema(
        "max_pool",
        attrs=dict(_POOL_ATTRS),
        infer=_infer_pool,
        macs=lambda ctx, out: 0,
        flops_per_output=0,
        doc="2-D max pooling (PyTorch semantics for padding and ceil_mode)",
    )
)
_op(
    OpSchema(
        "avg_pool",
        attrs={**_POOL_ATTRS, "count_include_pad": Attr("bool", True)},
        infer=_infer_pool,
        doc="2-D average pooling (PyTorch semantics for padding, ceil_mode, count_include_pad)",
    )
)


def _infer_gap(ctx: Ctx) -> Shape:
    c, _, _ = ctx.expect_rank(0, 3)
    return (c,)


_op(OpSchema("global_avg_pool", infer=_infer_gap, doc="mean over H and W: (N,C,H,W) -> (N,C)"))
_op(
    OpSchema(
        "flatten",
        infer=lambda ctx: (_numel(ctx.in_shapes[0]),),
        doc="(N, ...) -> (N, prod(...)) in canonical (C-order, NCHW) element order",
    )
)


def _infer_upsample(ctx: Ctx) -> Shape:
    c, h, w = ctx.expect_rank(0, 3)
    sh, sw = ctx.attrs["scale_factor"]
    if sh < 1 or sw < 1:
        raise ctx.fail(f"expected positive integer `scale_factor`. Received: {[sh, sw]}")
    return (c, h * sh, w * sw)


_op(
    OpSchema(
        "upsample",
        attrs={"scale_factor": Attr("pair", [2, 2]), "mode": Attr("str", "nearest", ("nearest",))},
        infer=_infer_upsample,
        doc="nearest-neighbour upsampling by an integer factor",
    )
)


def _infer_pad(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    pads = ctx.attrs["pads"]
    if len(pads) != 2 * len(shape):
        raise ctx.fail(
            f"expected `pads` to hold a (before, after) pair for each of the {len(shape)} "
            f"non-batch axes ({2 * len(shape)} ints). Received: pads={pads}"
        )
    if min(pads, default=0) < 0:
        raise ctx.fail(f"expected non-negative `pads` (no cropping). Received: pads={pads}")
    return tuple(d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(shape))


_op(
    OpSchema(
        "pad",
        attrs={"pads": Attr("ints"), "value": Attr("float", 0.0)},
        infer=_infer_pad,
        doc=(
            "constant padding; `pads` is (before, after) for each non-batch axis in canonical "
            "order, e.g. [c0, c1, h0, h1, w0, w1] for NCHW"
        ),
    )
)
