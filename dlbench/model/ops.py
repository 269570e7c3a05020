"""The ModelSpec op set: schemas, attribute validation, shape inference and MAC counting.

Every op a :class:`~dlbench.model.spec.ModelSpec` node may use is described here once, framework-free,
so that the spec can be checked (and its cost counted) before any backend sees it. Layout is
canonical: NCHW activations, OIHW conv weights, ``(out, in)`` dense weights.

Shapes handled here are *per-sample* shapes (the batch dimension left out); axis attributes
(``softmax.axis``, ``concat.axis``, ``transpose.perm``, ``reduce_mean.axes``, ``slice.axes``)
count the batch dimension as axis 0, like the frameworks do, and may not touch it; ``pad.pads``
lists (before, after) pairs for the non-batch axes only.

Example:
    >>> from dlbench.model.ops import OPS
    >>> sorted(OPS)[:3]
    ['add', 'avg_pool', 'batch_norm']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import SpecError

Shape = tuple[int, ...]
_REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind, default (or required) and allowed values."""

    kind: str  # int | float | bool | str | pair | ints | padding
    default: Any = _REQUIRED
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass
class Ctx:
    """What shape inference sees of one node (attributes already normalised)."""

    node: str
    op: str
    attrs: dict[str, Any]
    in_shapes: list[Shape]
    param_shapes: dict[str, Shape]

    def fail(self, message: str) -> SpecError:
        return SpecError(f"Node {self.node!r} ({self.op}): {message}")

    def expect_rank(self, i: int, rank: int | Sequence[int]) -> Shape:
        ranks = (rank,) if isinstance(rank, int) else tuple(rank)
        shape = self.in_shapes[i]
        if len(shape) not in ranks:
            want = " or ".join(str(r + 1) for r in ranks)
            raise self.fail(
                f"expected input {i} to have rank {want} (batch included). "
                f"Received shape {('N', *shape)}"
            )
        return shape

    def expect_param(self, role: str, shape: Shape) -> None:
        got = self.param_shapes.get(role)
        if got is None:
            return
        if tuple(got) != tuple(shape):
            raise self.fail(
                f"expected parameter `{role}` to have shape {tuple(shape)}. Received: {tuple(got)}"
            )


@dataclass(frozen=True)
class OpSchema:
    """The contract of one op."""

    name: str
    min_inputs: int = 1
    max_inputs: int | None = 1
    attrs: dict[str, Attr] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    optional_params: tuple[str, ...] = ()
    #: parameter roles that are state, not trained weights (not counted in ``params``)
    buffers: tuple[str, ...] = ()
    #: per-sample input shapes -> per-sample output shape; also checks parameter shapes
    infer: Callable[[Ctx], Shape] = lambda ctx: ctx.in_shapes[0]
    #: multiply-accumulates per sample
    macs: Callable[[Ctx, Shape], int] = lambda ctx, out: 0
    #: non-MAC floating point operations per output element (activations, normalisation...)
    flops_per_output: float = 0.0
    doc: str = ""


OPS: dict[str, OpSchema] = {}


def _op(schema: OpSchema) -> OpSchema:
    OPS[schema.name] = schema
    return schema


def get_schema(op: str, node: str = "?") -> OpSchema:
    """The schema of ``op``; a :class:`SpecError` naming ``node`` when the op is unknown."""
    try:
        return OPS[op]
    except KeyError:
        raise SpecError(
            f"Node {node!r}: unknown op {op!r}. Expected one of: {', '.join(sorted(OPS))}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Attribute normalisation
# ---------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _norm_value(kind: str, v: Any, choices: tuple[Any, ...] | None) -> Any:
    """Return the normalised value, or raise TypeError with what was expected."""
    if kind == "int":
        if not _is_int(v):
            raise TypeError("an int")
        return int(v)
    if kind == "float":
        if not (_is_int(v) or isinstance(v, float)):
            raise TypeError("a number")
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise TypeError("a bool")
        return v
    if kind == "str":
        if not isinstance(v, str) or (choices and v not in choices):
            raise TypeError(f"one of {list(choices or ())}" if choices else "a string")
        return v
    if kind == "pair":
        if _is_int(v):
            return [int(v), int(v)]
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v):
            return [int(x) for x in v]
        raise TypeError("an int or a pair of ints")
    if kind == "ints":
        if isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
            return [int(x) for x in v]
        raise TypeError("a list of ints")
    if kind == "padding":
        if isinstance(v, str):
            if v not in ("same", "valid"):
                raise TypeError("'same', 'valid', an int, a pair or (top, bottom, left, right)")
            return v
        if _is_int(v):
            return [int(v)] * 4
        if isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
            if len(v) == 2:
                return [int(v[0]), int(v[0]), int(v[1]), int(v[1])]
            if len(v) == 4:
                return [int(x) for x in v]
        raise TypeError("'same', 'valid', an int, a pair or (top, bottom, left, right)")
    raise AssertionError(kind)  # pragma: no cover


def normalize_attrs(schema: OpSchema, node: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Check ``attrs`` against ``schema``; return them with defaults filled in, JSON-native."""
    if not isinstance(attrs, dict):
        raise SpecError(
            f"Node {node!r} ({schema.name}): expected attrs to be a dict. Received: {attrs!r}"
        )
    unknown = sorted(set(attrs) - set(schema.attrs))
    if unknown:
        raise SpecError(
            f"Node {node!r} ({schema.name}): unknown attribute(s) {unknown}. "
            f"Expected some of: {sorted(schema.attrs)}"
        )
    out: dict[str, Any] = {}
    for key, spec in schema.attrs.items():
        if key not in attrs:
            if spec.required:
                raise SpecError(
                    f"Node {node!r} ({schema.name}): missing required attribute `{key}`"
                )
            out[key] = spec.default
            continue
        value = attrs[key]
        if value is None and spec.default is None:
            out[key] = None
            continue
        try:
            out[key] = _norm_value(spec.kind, value, spec.choices)
        except TypeError as exc:
            raise SpecError(
                f"Node {node!r} ({schema.name}): expected attribute `{key}` to be {exc}. "
                f"Received: {key}={value!r}"
            ) from None
    return out


# ---------------------------------------------------------------------------------------------
# Shared shape helpers (also used by the backends, through ResolvedNode.attrs)
# ---------------------------------------------------------------------------------------------


def conv_out(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow-style "same" padding: output ``ceil(size / s)``, extra pixel at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def pool_geometry(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[int, int]:
    """(output size, extra padding at the end) of one pooled axis, PyTorch semantics."""
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    extra = max((out - 1) * s + k - (size + 2 * p), 0)
    return out, extra


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _axis(ctx: Ctx, axis: int, rank: int, name: str = "axis") -> int:
    """Normalise a batch-inclusive axis of a rank-``rank`` tensor; axis 0 is not allowed."""
    a = axis + rank if axis < 0 else axis
    if not 1 <= a < rank:
        raise ctx.fail(
            f"expected `{name}` to be a non-batch axis of a rank-{rank} tensor "
            f"(1..{rank - 1} or negative). Received: {name}={axis}"
        )
    return a


# ---------------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------------


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


def _infer_reshape(ctx: Ctx) -> Shape:
    src = ctx.in_shapes[0]
    target = list(ctx.attrs["shape"])
    n = _numel(src)
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1 or any(d == 0 or d < -1 for d in target):
        raise ctx.fail(f"expected positive dims and at most one -1 in `shape`. Received: {target}")
    known = _numel([d for d in target if d != -1])
    if unknown:
        if n % known:
            raise ctx.fail(f"cannot reshape {src} into {target}")
        target[unknown[0]] = n // known
    if _numel(target) != n:
        raise ctx.fail(f"cannot reshape per-sample shape {src} ({n} elements) into {target}")
    ctx.attrs["shape"] = target
    return tuple(target)


_op(
    OpSchema(
        "reshape",
        attrs={"shape": Attr("ints")},
        infer=_infer_reshape,
        doc="reshape each sample (the batch axis is kept); one -1 allowed",
    )
)


def _infer_transpose(ctx: Ctx) -> Shape:
    src = ctx.in_shapes[0]
    perm = ctx.attrs["perm"]
    if sorted(perm) != list(range(len(src) + 1)) or perm[0] != 0:
        raise ctx.fail(
            f"expected `perm` to be a permutation of 0..{len(src)} that keeps the batch axis "
            f"first. Received: perm={perm}"
        )
    full = (None, *src)
    return tuple(full[p] for p in perm[1:])


_op(OpSchema("transpose", attrs={"perm": Attr("ints")}, infer=_infer_transpose, doc="permute axes"))


def _infer_binary(ctx: Ctx) -> Shape:
    shapes = list(ctx.in_shapes)
    other = ctx.param_shapes.get("other")
    if len(shapes) == 1 and other is None:
        raise ctx.fail("expected two inputs, or one input and a parameter `other`")
    if len(shapes) == 2 and other is not None:
        raise ctx.fail("expected two inputs or one input and `other`, not both")
    if len(shapes) == 2 and len(shapes[0]) != len(shapes[1]):
        raise ctx.fail(f"expected inputs of equal rank. Received: {shapes[0]} and {shapes[1]}")
    if other is not None:
        if len(other) > len(shapes[0]):
            raise ctx.fail(
                f"parameter `other` {tuple(other)} has more axes than the input {shapes[0]}"
            )
        shapes.append(tuple(other))
    out: list[int] = []
    rank = max(len(s) for s in shapes)
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            raise ctx.fail(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else 1)
    if tuple(out) != tuple(shapes[0]) and other is not None:
        raise ctx.fail(f"parameter `other` {tuple(other)} may not grow the input {shapes[0]}")
    return tuple(out)


for _name in ("add", "mul"):
    _op(
        OpSchema(
            _name,
            max_inputs=2,
            optional_params=("other",),
            infer=_infer_binary,
            flops_per_output=1,
            doc=f"element-wise {_name} of two inputs (broadcasting), or of an input and `other`",
        )
    )


def _infer_concat(ctx: Ctx) -> Shape:
    shapes = ctx.in_shapes
    rank = len(shapes[0]) + 1
    axis = _axis(ctx, ctx.attrs["axis"], rank)
    ctx.attrs["axis"] = axis
    for s in shapes[1:]:
        if len(s) != len(shapes[0]) or any(
            a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis - 1
        ):
            raise ctx.fail(f"inputs {shapes} do not match outside axis {axis}")
    out = list(shapes[0])
    out[axis - 1] = sum(s[axis - 1] for s in shapes)
    return tuple(out)


_op(
    OpSchema(
        "concat",
        min_inputs=2,
        max_inputs=None,
        attrs={"axis": Attr("int", 1)},
        infer=_infer_concat,
        doc="concatenate along a non-batch axis (default channels)",
    )
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


def _infer_matmul(ctx: Ctx) -> Shape:
    a, b = ctx.in_shapes
    if len(a) < 2 or len(a) != len(b) or a[:-2] != b[:-2] or a[-1] != b[-2]:
        raise ctx.fail(f"cannot matmul per-sample shapes {a} and {b}")
    return (*a[:-1], b[-1])


_op(
    OpSchema(
        "matmul",
        min_inputs=2,
        max_inputs=2,
        infer=_infer_matmul,
        macs=lambda ctx, out: _numel(out) * ctx.in_shapes[0][-1],
        doc="batched matrix product of two inputs of equal rank",
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


def _infer_mean(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    rank = len(shape) + 1
    axes = sorted({_axis(ctx, a, rank, "axes") for a in ctx.attrs["axes"]})
    if not axes:
        raise ctx.fail("expected at least one axis in `axes`")
    ctx.attrs["axes"] = axes
    if ctx.attrs["keepdims"]:
        return tuple(1 if i + 1 in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i + 1 not in axes)


_op(
    OpSchema(
        "reduce_mean",
        attrs={"axes": Attr("ints"), "keepdims": Attr("bool", False)},
        infer=_infer_mean,
        doc="mean over non-batch axes",
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


def _infer_slice(ctx: Ctx) -> Shape:
    shape = ctx.in_shapes[0]
    rank = len(shape) + 1
    a = ctx.attrs
    axes = [_axis(ctx, ax, rank, "axes") for ax in a["axes"]]
    if not axes or len(set(axes)) != len(axes):
        raise ctx.fail(f"expected distinct non-batch `axes`. Received: axes={a['axes']}")
    n = len(axes)
    starts = [0] * n if a["starts"] is None else a["starts"]
    ends = [shape[ax - 1] for ax in axes] if a["ends"] is None else a["ends"]
    steps = [1] * n if a["steps"] is None else a["steps"]
    for key, vals in (("starts", starts), ("ends", ends), ("steps", steps)):
        if len(vals) != n:
            raise ctx.fail(
                f"expected `{key}` to have one value per axis ({n}). Received: {key}={vals}"
            )
    if min(steps) < 1:
        raise ctx.fail(f"expected positive `steps`. Received: steps={steps}")
    # resolved [start, stop, step] for every non-batch axis: Python semantics (negative
    # indices count from the end, out-of-range bounds are clamped), for the backends
    slices = [[0, d, 1] for d in shape]
    out = list(shape)
    for ax, b, e, s in zip(axes, starts, ends, steps):
        start, stop, step = slice(b, e, s).indices(shape[ax - 1])
        size = len(range(start, stop, step))
        if size < 1:
            raise ctx.fail(f"slice {b}:{e}:{s} of axis {ax} (size {shape[ax - 1]}) is empty")
        slices[ax - 1] = [start, start + (size - 1) * step + 1, step]
        out[ax - 1] = size
    a["axes"] = axes
    a["slices"] = slices
    return tuple(out)


_op(
    OpSchema(
        "slice",
        attrs={
            "axes": Attr("ints"),
            "starts": Attr("ints", None),
            "ends": Attr("ints", None),
            "steps": Attr("ints", None),
        },
        infer=_infer_slice,
        doc=(
            "strided slice x[..., start:end:step] along non-batch `axes` (Python semantics, "
            "positive steps); defaults: from 0, to the end, step 1"
        ),
    )
)


def check_node(
    name: str,
    op: str,
    n_inputs: int,
    attrs: dict[str, Any],
    params: dict[str, str],
    in_shapes: list[Shape],
    param_shapes: dict[str, Shape],
) -> tuple[dict[str, Any], Shape]:
    """Validate one node; return (normalised attrs incl. derived ones, per-sample output shape)."""
    schema = get_schema(op, name)
    hi = schema.max_inputs
    if n_inputs < schema.min_inputs or (hi is not None and n_inputs > hi):
        want = (
            f"{schema.min_inputs}"
            if hi == schema.min_inputs
            else (
                f"{schema.min_inputs}..{hi}" if hi is not None else f"at least {schema.min_inputs}"
            )
        )
        raise SpecError(f"Node {name!r} ({op}): expected {want} input(s). Received: {n_inputs}")
    allowed = set(schema.params) | set(schema.optional_params)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise SpecError(
            f"Node {name!r} ({op}): unknown parameter role(s) {unknown}. "
            f"Expected some of: {sorted(allowed)}"
        )
    missing = [r for r in schema.params if r not in params]
    if missing:
        raise SpecError(f"Node {name!r} ({op}): missing parameter(s) {missing}")
    norm = normalize_attrs(schema, name, attrs)
    ctx = Ctx(name, op, norm, [tuple(s) for s in in_shapes], dict(param_shapes))
    out = tuple(int(d) for d in schema.infer(ctx))
    return ctx.attrs, out


def count(
    op: str,
    attrs: dict[str, Any],
    in_shapes: list[Shape],
    param_shapes: dict[str, Shape],
    out: Shape,
) -> tuple[int, int]:
    """(MACs, FLOPs) per sample of one node whose attrs are already normalised."""
    schema = OPS[op]
    ctx = Ctx("?", op, attrs, in_shapes, param_shapes)
    macs = int(schema.macs(ctx, out))
    flops = 2 * macs + int(schema.flops_per_output * _numel(out))
    if "bias" in param_shapes and op in ("conv2d", "dense"):
        flops += _numel(out)
    if op in ("avg_pool", "max_pool"):
        k = attrs["kernel_size"]
        flops += _numel(out) * k[0] * k[1]
    if op in ("global_avg_pool", "reduce_mean"):
        flops += _numel(in_shapes[0])
    return macs, flops
