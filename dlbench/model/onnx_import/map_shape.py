"""Handlers of shape plumbing: Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Concat, Slice,
Split, Gather (the batch axis is followed, never merged)."""

from __future__ import annotations

import math

import numpy as np

from dlbench.model.onnx_import.handlers import (
    _TO_END,
    _fail,
    _weight_name,
    handles,
)
from dlbench.model.onnx_import.load import check_elements
from dlbench.model.onnx_import.values import BATCH, Act, Const

# -- shape plumbing -------------------------------------------------------------------------------


def _reshape_target(cv, label: str, x: Act, target: list[int]) -> tuple[list[int], int, int, int]:
    """Where the batch lands in a reshape: (per-sample dims of the new unmerged shape, its batch
    position, merged axes before it, merged axes after it).

    The ONNX tensor and its unmerged form share one C-order buffer, so the reshape is worked out
    on the unmerged form: the entry holding the batch (a traced ``BATCH * m``, or the one ``-1``)
    holds ``N * m`` elements; ``m`` splits into a part before the batch (``P``, set by the
    elements before the batch) and after it (``F``), which stay merged with it.
    """
    numel = math.prod(x.s)
    before = math.prod(x.s[: x.b])
    marks = [
        (i, d // BATCH)
        for i, d in enumerate(target)
        if d != 0 and d % BATCH == 0 and d // BATCH >= 1
    ]
    if not marks and (fixed := _fixed_batch_axis(cv, target, before)) is not None:
        marks = [fixed]
        target = [BATCH * fixed[1] if i == fixed[0] else d for i, d in enumerate(target)]
    if len(marks) > 1:
        raise _fail(label, "Reshape", f"the batch size appears twice in the target shape {target}")
    rest = [d for i, d in enumerate(target) if not marks or i != marks[0][0]]
    if any(d < -1 for d in rest) or rest.count(-1) > 1:
        raise _fail(
            label,
            "Reshape",
            f"the target shape {target} depends on the batch size through arithmetic (or is malformed)",
        )
    if marks:
        k, m = marks[0]
        if -1 in rest:
            known = m * math.prod(d for d in rest if d != -1)
            if known == 0 or numel % known:
                raise _fail(label, "Reshape", f"cannot reshape {x.shape} into {target}")
            rest[rest.index(-1)] = numel // known
    elif -1 in target:
        k = target.index(-1)
        known = math.prod(d for d in rest if d != -1)
        if known == 0 or numel % known:
            raise _fail(label, "Reshape", f"cannot reshape {x.shape} into {target}")
        rest = [d for i, d in enumerate(target) if i != k]
        m = numel // known
    else:
        raise _fail(
            label,
            "Reshape",
            f"cannot tell the batch axis in the target shape {target} of {x.shape}",
        )
    if m * math.prod(rest) != numel:
        raise _fail(label, "Reshape", f"cannot reshape {x.shape} into {target}")
    lead = math.prod(rest[:k])
    if lead == 0 or before % lead or m % (before // lead):
        raise _fail(
            label, "Reshape", f"the target {target} moves data across the batch axis of {x.shape}"
        )
    big_p = before // lead
    big_f = m // big_p
    dims = [*rest[:k], *([big_p] if big_p > 1 else []), *([big_f] if big_f > 1 else []), *rest[k:]]
    return dims, k + (big_p > 1), int(big_p > 1), int(big_f > 1)


def _fixed_batch_axis(cv, target: list[int], before: int) -> tuple[int, int] | None:
    """In a graph exported with a fixed batch size ``B``: (the target axis that holds the batch,
    how many elements of a sample are merged with it), the first axis whose size is a multiple of
    ``B`` with as many elements before it as the input has before its batch axis."""
    fb = cv.fixed_batch
    if fb is None:
        return None
    for i, d in enumerate(target):
        if -1 in target[:i] or math.prod(target[:i]) > before:
            break
        if d > 0 and d % fb == 0 and math.prod(target[:i]) == before:
            return i, d // fb
    return None


@handles("Reshape")
def _reshape(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    target = [int(d) for d in np.asarray(cv.const(n.input[1], label, "shape")).reshape(-1)]
    if not attrs.get("allowzero", 0):
        src = x.shape_vector()
        target = [src[i] if d == 0 and i < x.rank else d for i, d in enumerate(target)]
    dims, b, p, f = _reshape_target(cv, label, x, target)
    return [cv.reshape(x, tuple(dims), b, label, p, f)]


@handles("Flatten")
def _flatten(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = attrs.get("axis", 1) % x.rank if attrs.get("axis", 1) != x.rank else x.rank
    if x.b != 0 or axis != 1:
        raise _fail(
            label,
            "Flatten",
            f"only Flatten(axis=1) of a batch-first tensor is supported. Received axis={attrs.get('axis', 1)}, shape {x.shape}",
        )
    if x.rank == 2:
        return [x]
    return [cv.emit("flatten", [x], hint=label)]


@handles("Transpose")
def _transpose(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    perm = list(attrs.get("perm", reversed(range(x.rank))))
    if sorted(perm) != list(range(x.rank)):
        raise _fail(label, "Transpose", f"perm {perm} is not a permutation of {x.rank} axes")
    g, ub = x.group, x.b

    def block(a: int) -> list[int]:  # the unmerged axes of ONNX axis a
        if a == g:
            return list(range(ub - x.p, ub + x.f + 1))
        return [a if a < g else a + x.p + x.f]

    uperm = [t for a in perm for t in block(a)]
    nb = uperm.index(ub)

    def s_index(t: int) -> int:
        return 0 if t == ub else (t + 1 if t < ub else t)

    order = [nb] + [i for i in range(len(uperm)) if i != nb]
    r = [s_index(uperm[i]) for i in order]
    if r == list(range(len(uperm))):
        return [Act(x.name, x.s, nb, x.p, x.f)]
    y = cv.emit("transpose", [x], {"perm": r}, hint=label, b=nb)
    return [Act(y.name, y.s, nb, x.p, x.f)]


def _axes_input(cv, n, label, attrs) -> list[int] | None:
    if len(n.input) > 1 and n.input[1]:
        return [int(a) for a in np.asarray(cv.const(n.input[1], label, "axes")).reshape(-1)]
    return list(attrs["axes"]) if "axes" in attrs else None


@handles("Squeeze")
def _squeeze(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    shape = list(x.shape)
    axes = _axes_input(cv, n, label, attrs)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = sorted({a % x.rank for a in axes})
    if x.b in axes:
        raise _fail(label, "Squeeze", "squeezing the batch axis is not supported")
    if any(shape[a] != 1 for a in axes):
        raise _fail(label, "Squeeze", f"axes {axes} of {x.shape} are not all of size 1")
    keep = [d for i, d in enumerate(shape) if i not in axes]
    nb = keep.index(None)
    return [cv.reshape(x, tuple(d for d in keep if d is not None), nb, label)]


@handles("Unsqueeze")
def _unsqueeze(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axes = _axes_input(cv, n, label, attrs) or []
    r = x.rank + len(axes)
    axes = sorted({a % r for a in axes})
    shape, src = [], iter(x.shape)
    for i in range(r):
        shape.append(1 if i in axes else next(src))
    nb = shape.index(None)
    return [cv.reshape(x, tuple(d for d in shape if d is not None), nb, label)]


@handles("Concat")
def _concat(cv, n, label, attrs):
    vals = [cv.get(i, label) for i in n.input if i]
    if any(isinstance(v, Const) for v in vals):
        return [_concat_constants(cv, n, label, attrs, vals)]
    xs = [cv.act(i, label) for i in n.input if i]
    if any(v.rank != xs[0].rank or v.b != xs[0].b for v in xs):
        raise _fail(
            label,
            "Concat",
            f"expected inputs of equal rank and batch axis. Received {[v.shape for v in xs]}",
        )
    axis = xs[0].spec_axis(int(attrs["axis"]), label)
    if len(xs) == 1:
        return [xs[0]]
    return [cv.emit("concat", xs, {"axis": axis}, hint=label, b=xs[0].b)]


def _concat_constants(cv, n, label: str, attrs, vals: list) -> Act:
    """Constants concatenated before and after activations (ViT's class token, expanded over the
    batch): pad the activations with zeros there and add the constants, which is exact."""
    kinds = "".join("a" if isinstance(v, Act) else "c" for v in vals)
    acts = [v for v in vals if isinstance(v, Act)]
    if "a" not in kinds or "c" in kinds.strip("c"):
        raise _fail(
            label,
            "Concat",
            "constants may only come before and after the activations, not between them",
        )
    x0 = acts[0]
    if any(v.merged or v.rank != x0.rank or v.b != x0.b for v in acts):
        raise _fail(
            label,
            "Concat",
            f"expected activations of equal rank and batch axis. Received {[v.shape for v in acts]}",
        )
    axis = x0.spec_axis(int(attrs["axis"]), label)
    y = acts[0] if len(acts) == 1 else cv.emit("concat", acts, {"axis": axis}, hint=label, b=x0.b)
    first, last = kinds.index("a"), kinds.rindex("a")
    blocks = []
    for i, v in enumerate(vals):
        if first < i <= last:
            continue
        if i == first:
            blocks.append(np.zeros(y.s, np.float32))
            continue
        c = np.asarray(v.value, np.float32)
        if c.ndim != x0.rank or c.shape[x0.b] != 1:
            raise _fail(
                label,
                "Concat",
                f"expected a constant of rank {x0.rank} with size 1 along the batch axis. "
                f"Received shape {c.shape}",
            )
        c = np.moveaxis(c, x0.b, 0)[0]
        want = list(y.s)
        want[axis - 1] = c.shape[axis - 1]
        try:
            blocks.append(np.broadcast_to(c, want))
        except ValueError:
            raise _fail(label, "Concat", f"constant {c.shape} does not match {y.s}") from None
    lead = sum(b.shape[axis - 1] for b in blocks[:first])
    trail = sum(b.shape[axis - 1] for b in blocks[first + 1 :])
    pads = [0] * (2 * len(y.s))
    pads[2 * (axis - 1)], pads[2 * (axis - 1) + 1] = lead, trail
    padded = cv.emit("pad", [y], {"pads": pads, "value": 0.0}, hint=f"{label}.pad", b=y.b)
    other = np.concatenate([blocks[0]] if len(blocks) == 1 else blocks, axis=axis - 1)
    cv.fused["concat(constant) as pad + add"] += 1
    return cv.emit("add", [padded], {}, {"other": other}, hint=label, b=y.b)


def _slice_axis(
    cv, x: Act, label: str, axis: int, start: int, end: int, step: int, hint: str
) -> Act:
    a = x.spec_axis(axis, label)
    return cv.emit(
        "slice",
        [x],
        {"axes": [a], "starts": [start], "ends": [end], "steps": [step]},
        hint=hint,
        b=x.b,
    )


@handles("Slice")
def _slice(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    ins = list(n.input) + [""] * 5
    vec = lambda i: [int(v) for v in np.asarray(cv.const(ins[i], label)).reshape(-1)]  # noqa: E731
    starts, ends = vec(1), vec(2)
    axes = vec(3) if ins[3] else list(range(len(starts)))
    steps = vec(4) if ins[4] else [1] * len(starts)
    shape = x.shape
    sa, ss, se, st, full = [], [], [], [], True
    for a, b0, e0, s in zip(axes, starts, ends, steps):
        a %= x.rank
        if a == x.b:
            if b0 == 0 and (e0 >= _TO_END or e0 == BATCH) and s == 1:
                continue
            raise _fail(label, "Slice", "slicing the batch axis is not supported")
        if s < 1:
            raise _fail(
                label, "Slice", f"only positive steps are supported. Received steps={steps}"
            )
        size = shape[a]
        b1, e1, s1 = slice(b0, min(max(e0, -size - 1), size), s).indices(size)
        full = full and (b1, e1, s1) == (0, size, 1)
        sa.append(x.spec_axis(a, label))
        ss.append(b1)
        se.append(e1)
        st.append(s1)
    if not sa or full:
        return [x]
    return [
        cv.emit(
            "slice", [x], {"axes": sa, "starts": ss, "ends": se, "steps": st}, hint=label, b=x.b
        )
    ]


@handles("Split")
def _split(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = int(attrs.get("axis", 0)) % x.rank
    size = x.shape[axis]
    if size is None:
        raise _fail(label, "Split", "splitting the batch axis is not supported")
    sizes = None
    if len(n.input) > 1 and n.input[1]:
        sizes = [int(v) for v in np.asarray(cv.const(n.input[1], label, "split")).reshape(-1)]
    elif "split" in attrs:
        sizes = [int(v) for v in attrs["split"]]
    if sizes is None:
        parts = int(attrs.get("num_outputs", len(n.output)))
        chunk = -(-size // parts)
        sizes = [min(chunk, size - i * chunk) for i in range(parts)]
    if sum(sizes) != size or len(sizes) != len(n.output):
        raise _fail(label, "Split", f"split sizes {sizes} do not cover axis {axis} of size {size}")
    outs, start = [], 0
    for k, s in enumerate(sizes):
        outs.append(_slice_axis(cv, x, label, axis, start, start + s, 1, f"{label}.{k}"))
        start += s
    return outs


def _lookup(cv, n, label, attrs) -> list:
    """Gather of a constant table by integer ids computed from the input: an ``embedding``
    (axis 0: the rows of the table; another axis is moved to the front first, when the ids
    are the only axes before it in the output, i.e. the table has no axis before it)."""
    table = np.asarray(cv.const(n.input[0], label, "data"))
    ids = cv.act(n.input[1], label, "indices")
    if ids.name not in cv.integer:
        raise _fail(
            label,
            "Gather",
            f"expected the indices {n.input[1]!r} to be integer token ids (an int64 graph input, "
            "possibly reshaped)",
        )
    axis = int(attrs.get("axis", 0))
    if table.ndim == 0 or not -table.ndim <= axis < table.ndim:
        raise _fail(label, "Gather", f"axis {axis} is out of range for data of shape {table.shape}")
    if axis % table.ndim != 0:
        raise _fail(
            label,
            "Gather",
            f"only a lookup of rows (axis 0) of a constant table is supported. Received: "
            f"axis={axis} on data of shape {table.shape}",
        )
    if table.dtype.kind != "f":
        raise _fail(label, "Gather", f"expected a float table. Received: {table.dtype}")
    w = _weight_name(cv, n.input[0], table, f"{label}.weight")
    y = cv.emit("embedding", [ids], {}, {"weight": w}, hint=label, b=ids.b)
    return [y]


@handles("Gather")
def _gather(cv, n, label, attrs):
    if isinstance(cv.get(n.input[0], label), Const):
        return _lookup(cv, n, label, attrs)
    x = cv.act(n.input[0], label, "data")
    idx = np.asarray(cv.const(n.input[1], label, "indices"))
    axis = int(attrs.get("axis", 0)) % x.rank
    size = x.shape[axis]
    if size is None:
        raise _fail(label, "Gather", "gathering along the batch axis is not supported")
    flat = [int(i) % size for i in idx.reshape(-1)]
    if idx.ndim == 0:
        y = _slice_axis(cv, x, label, axis, flat[0], flat[0] + 1, 1, f"{label}.slice")
        shape = [d for i, d in enumerate(y.shape) if i != axis]
        nb = shape.index(None)
        return [cv.reshape(y, tuple(d for d in shape if d is not None), nb, label)]
    if (
        idx.ndim == 1
        and len(flat) > 1
        and all(flat[i + 1] - flat[i] == flat[1] - flat[0] > 0 for i in range(len(flat) - 1))
    ):
        step = flat[1] - flat[0]
        return [_slice_axis(cv, x, label, axis, flat[0], flat[-1] + 1, step, label)]
    if idx.ndim == 1 and len(flat) == 1:
        return [_slice_axis(cv, x, label, axis, flat[0], flat[0] + 1, 1, label)]
    raise _fail(
        label,
        "Gather",
        f"only a scalar index or an evenly spaced list of indices is supported. Received indices of shape {idx.shape}",
    )


@handles("Tile")
def _tile(cv, n, label, attrs):
    """Tile along non-batch axes: a concat of copies (how tf2onnx writes Repeat-style upsampling)."""
    x = cv.act(n.input[0], label)
    reps = [int(r) for r in np.asarray(cv.const(n.input[1], label, "repeats")).reshape(-1)]
    if len(reps) != x.rank or min(reps, default=1) < 1:
        raise _fail(label, "Tile", f"expected {x.rank} positive repeats. Received {reps}")
    if reps[x.b] != 1:
        raise _fail(label, "Tile", "tiling the batch axis is not supported")
    check_elements(
        [d * r for d, r in zip(x.s, [r for i, r in enumerate(reps) if i != x.b])],
        f"Node {label!r} (Tile) output",
    )
    y = x
    for axis, r in enumerate(reps):
        if r > 1:
            a = y.spec_axis(axis, label)
            y = cv.emit("concat", [y] * r, {"axis": a}, hint=f"{label}.{axis}", b=y.b)
    return [y]


@handles("Expand")
def _expand(cv, n, label, attrs):
    """Broadcast size-1 non-batch axes of an activation: a concat of copies per grown axis."""
    x = cv.act(n.input[0], label)
    shape = [int(d) for d in np.asarray(cv.const(n.input[1], label, "shape")).reshape(-1)]
    if len(shape) != x.rank:
        raise _fail(label, "Expand", f"expected a shape of rank {x.rank}. Received {shape}")
    check_elements(
        [max(h, w) for i, (h, w) in enumerate(zip(x.shape, shape)) if i != x.b],
        f"Node {label!r} (Expand) output",
    )
    y = x
    for axis, (have, want) in enumerate(zip(x.shape, shape)):
        if axis == x.b:
            if want not in (1, BATCH):
                raise _fail(label, "Expand", "expanding the batch axis is not supported")
            continue
        if want in (1, have):
            continue
        if have != 1:
            raise _fail(label, "Expand", f"cannot expand {x.shape} to {shape}")
        y = cv.emit(
            "concat", [y] * want, {"axis": y.spec_axis(axis, label)}, hint=f"{label}.{axis}", b=y.b
        )
    return [y]
