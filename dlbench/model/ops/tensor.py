"""Tensor plumbing and arithmetic: reshape, transpose, binary ops (add, mul, div), concat, matmul,
reduce_mean, slice."""

from __future__ import annotations

from dlbench.model.ops.schema import (
    Attr,
    Ctx,
    OpSchema,
    Shape,
    _axis,
    _numel,
    _op,
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
    return tuple(out)


for _name, _what in (("add", "x + y"), ("mul", "x * y"), ("div", "x / y")):
    _op(
        OpSchema(
            _name,
            max_inputs=2,
            optional_params=("other",),
            infer=_infer_binary,
            flops_per_output=1,
            doc=f"element-wise {_what} of two inputs (broadcasting), or with y = `other`",
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


def _infer_embedding(ctx: Ctx) -> Shape:
    table = ctx.param_shapes.get("weight")
    if table is None or len(table) < 1 or table[0] < 1:
        raise ctx.fail(
            f"expected parameter `weight` to be a table of rows (rank >= 1, at least one row). "
            f"Received: {table}"
        )
    return (*ctx.in_shapes[0], *table[1:])


_op(
    OpSchema(
        "embedding",
        params=("weight",),
        infer=_infer_embedding,
        doc=(
            "rows of the table `weight` (V, ...) selected by integer indices in [0, V) (the "
            "input must hold int64 ids: a graph input of dtype int64, possibly reshaped, "
            "transposed, sliced or flattened): per-sample shape S -> S + weight.shape[1:]; "
            "a lookup, no arithmetic (0 MACs, 0 FLOPs: its cost is the rows it reads)"
        ),
    )
)
