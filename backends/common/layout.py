"""Channels-last inside a build: which layout each tensor of a spec graph lives in.

The spec is canonical (NCHW activations). XLA:CPU's and TensorFlow's convolutions, pools and
batch norms run NHWC; a build that keeps the canonical layout everywhere makes the compiled
program move every activation NCHW -> NHWC and back around each convolution. :func:`plan_layouts`
decides once, framework-free, per tensor, whether it lives NHWC (:data:`NHWC`) or canonical
(:data:`CANON`) inside the program, so that a chain of convolutions has one transpose at its
entry and one at its exit:

- convolutions produce NHWC (their input is brought to NHWC);
- ops that compute the same function in either layout (activations, batch norm, pools, upsample,
  pad, slice, softmax, ``reduce_mean`` with ``keepdims``) keep their input's layout, with their
  axis attributes mapped by :func:`axis_of` / :func:`per_axis`;
- add/mul/div/concat of 4-D tensors run NHWC when any input is NHWC (the others are brought to
  NHWC); a constant operand of rank 3 or 4 is transposed once at build time
  (:func:`const_to_nhwc`), a scalar broadcasts either way, any other constant keeps the op
  canonical;
- ``global_avg_pool`` (and ``reduce_mean`` over both spatial axes without ``keepdims``) reads
  either layout and produces a canonical (N, C);
- a ``transpose`` of a 4-D tensor reads it as stored and lands in whichever layout makes it a
  no-op (``physical_perm``): a channels-last block's (0, 2, 3, 1) ... (0, 3, 1, 2) permutes
  around a layer norm cost nothing;
- everything else (flatten, reshape, dense, matmul, attention, LSTM, embedding...) reads
  canonical inputs, and graph outputs leave canonical.

Only tensors with three per-sample dimensions (N, C, H, W) are ever NHWC. The graph input arrives
NHWC when that makes fewer transposes (:func:`plan_layouts` tries both), so the host hands the
program NHWC data, as a JAX or Keras user would. A conversion is counted once per tensor and
layout (a build memoises it), so :attr:`LayoutPlan.transposes` is what the program does per call.

Example:
    >>> import dlbench
    >>> p = plan_layouts(dlbench.zoo.get("resnet20"))
    >>> p.input, p.transposes
    ('nhwc', 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NHWC, CANON = "nhwc", "canon"

#: canonical (N, C, H, W) axis -> its position in NHWC
NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)

#: ops whose output is NHWC whatever their input's layout
CHANNELS_LAST = frozenset({"conv2d"})
#: one-input ops that compute the same thing in either layout (output = input layout)
FOLLOW = frozenset(
    {
        "relu",
        "relu6",
        "sigmoid",
        "tanh",
        "silu",
        "hard_swish",
        "gelu",
        "dropout",
        "sqrt",
        "reciprocal",
        "erf",
        "batch_norm",
        "max_pool",
        "avg_pool",
        "upsample",
        "pad",
        "slice",
        "softmax",
    }
)
#: ops joining tensors elementwise or along an axis
JOIN = frozenset({"add", "mul", "div", "concat"})


@dataclass(frozen=True)
class LayoutPlan:
    """Where every tensor lives: ``input`` (the graph input's layout as the program receives
    it), ``out`` (tensor name -> layout it is produced in), ``wants`` (node name -> the layout
    it reads each input in), ``outputs`` (graph outputs, read canonical) and ``transposes``
    (distinct conversions per call that move data)."""

    input: str
    out: dict[str, str]
    wants: dict[str, tuple[str, ...]]
    transposes: int
    nhwc_nodes: frozenset[str] = field(default_factory=frozenset)


def _is_4d(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3


def _const_ok(a: np.ndarray | None) -> bool:
    """A constant operand that can broadcast against an NHWC tensor (after
    :func:`const_to_nhwc`)."""
    return a is None or a.size == 1 or a.ndim in (3, 4)


def const_to_nhwc(a: np.ndarray) -> np.ndarray:
    """A constant operand of a 4-D elementwise op, rearranged once for an NHWC partner:
    (C, H, W) -> (H, W, C), (N, C, H, W) -> (N, H, W, C); a scalar as is."""
    a = np.asarray(a)
    if a.size == 1 and a.ndim < 3:
        return a
    if a.ndim == 3:
        return np.ascontiguousarray(a.transpose(1, 2, 0))
    if a.ndim == 4:
        return np.ascontiguousarray(a.transpose(NCHW_TO_NHWC))
    raise ValueError(f"Expected a scalar or a rank-3/4 constant. Received: shape {a.shape}")


def axis_of(axis: int, layout: str, rank: int = 4) -> int:
    """A canonical axis (batch = 0, may be negative) of a rank-``rank`` tensor, where it is in
    ``layout``."""
    axis %= rank
    return NHWC_AXIS[axis] if layout == NHWC and rank == 4 else axis


def per_axis(values: list[Any], layout: str) -> list[Any]:
    """Per non-batch axis values in canonical (C, H, W) order -> the tensor's own order."""
    if layout == NHWC:
        c, h, w = values
        return [h, w, c]
    return list(values)


def physical_perm(perm: list[int], in_layout: str, out_layout: str) -> tuple[int, ...]:
    """The permutation of the stored (physical) array that a spec ``transpose`` by ``perm``
    becomes when its input is stored in ``in_layout`` and its output in ``out_layout`` (rank
    4): ``(0, 1, 2, 3)`` means no data moves."""
    p_in = NHWC_TO_NCHW if in_layout == NHWC else (0, 1, 2, 3)
    q = NCHW_TO_NHWC if out_layout == NHWC else (0, 1, 2, 3)
    return tuple(p_in[perm[i]] for i in q)


def _node_rule(rn: Any, layouts: list[str]) -> tuple[tuple[str, ...], str]:
    """(the layout each input is read in, the output's layout) for one node."""
    op, n = rn.op, len(rn.inputs)
    four = [_is_4d(s) for s in rn.in_shapes]
    canon_all = (CANON,) * n, CANON
    if op in CHANNELS_LAST and four[0]:
        return (NHWC,) * n, NHWC
    if op in FOLLOW and four[0]:
        return (layouts[0],), layouts[0]
    if op == "reduce_mean" and four[0]:
        axes = set(rn.attrs["axes"])
        if rn.attrs["keepdims"]:
            return (layouts[0],), layouts[0]
        if axes == {2, 3}:  # the spatial mean: (N, C) out, either layout in
            return (layouts[0],), CANON
        return canon_all
    if op == "global_avg_pool":
        return (layouts[0],), CANON
    if op == "transpose" and four[0]:
        # read as it is; out in the layout whose physical order needs no data movement, if one
        # does (a channels-last block's permutes cancel against NHWC), else canonical
        perm = rn.attrs["perm"]
        for out in (CANON, NHWC):
            if physical_perm(perm, layouts[0], out) == (0, 1, 2, 3):
                return (layouts[0],), out
        return (layouts[0],), CANON
    if op in JOIN and all(four) and _is_4d(rn.out_shape) and NHWC in layouts:
        if op == "concat" or n == 2 or _const_ok(rn.params.get("other")):
            return (NHWC,) * n, NHWC
    if op in JOIN and all(four) and _is_4d(rn.out_shape):
        return (CANON,) * n, CANON
    return canon_all


def _free(shape: tuple[int, ...]) -> bool:
    """A (C, H, W) tensor whose NCHW and NHWC orders are the same memory (C == 1 or
    H * W == 1, e.g. squeeze-excitation scales): converting it moves no data."""
    return len(shape) == 3 and (shape[0] == 1 or shape[1] * shape[2] == 1)


def _plan(plan: list[Any], input_name: str, outputs: list[str], input_layout: str) -> LayoutPlan:
    out: dict[str, str] = {input_name: input_layout}
    wants: dict[str, tuple[str, ...]] = {}
    shapes = {rn.name: rn.out_shape for rn in plan}
    needed: set[tuple[str, str]] = set()  # (tensor, layout) pairs some reader needs
    for rn in plan:
        have = [out[i] for i in rn.inputs]
        want, produced = _node_rule(rn, have)
        wants[rn.name] = want
        out[rn.name] = produced
        needed.update((t, w) for t, w in zip(rn.inputs, want))
    needed.update((t, CANON) for t in outputs)
    transposes = sum(1 for t, w in needed if out[t] != w and not _free(shapes.get(t, ())))
    nhwc = frozenset(rn.name for rn in plan if out[rn.name] == NHWC)
    return LayoutPlan(input_layout, out, wants, transposes, nhwc)


def plan_layouts(
    spec: Any, plan: list[Any] | None = None, channels_last: bool = True
) -> LayoutPlan:
    """The layout of every tensor of ``spec`` (see the module docstring).

    ``channels_last=False``: every tensor canonical (the plan a canonical build follows).
    The graph input is NHWC only when it is a float (N, C, H, W) tensor and that saves
    transposes.
    """
    plan = spec.resolved() if plan is None else plan
    name, outputs = spec.inputs[0].name, list(spec.outputs)
    if not channels_last:
        wants = {rn.name: (CANON,) * len(rn.inputs) for rn in plan}
        out = {name: CANON, **{rn.name: CANON for rn in plan}}
        return LayoutPlan(CANON, out, wants, 0)
    first = _plan(plan, name, outputs, CANON)
    x = spec.inputs[0]
    if len(x.shape) != 4 or x.dtype != "float32":
        return first
    second = _plan(plan, name, outputs, NHWC)
    return second if second.transposes < first.transposes else first
