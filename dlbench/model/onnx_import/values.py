"""What an ONNX value becomes during import: a constant (NumPy) or an activation (a spec tensor).

An activation keeps the batch axis wherever the ONNX graph has it (axis ``b``); its spec tensor
holds the same data with the batch axis moved to the front (``numpy.moveaxis(t, b, 0)``), since
every spec tensor is batch-first. Shape vectors read from an activation (``Shape``) carry
:data:`BATCH` in place of the free batch size, so traced shape chains fold to constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlbench.errors import SpecError

#: Stand-in for the free batch size inside folded shape vectors (it fits in int32: tf2onnx does
#: some shape arithmetic in int32).
BATCH = -(2**30) - 7


@dataclass
class Const:
    """A value known at import time."""

    value: np.ndarray


@dataclass
class Act:
    """A value computed at run time: spec tensor ``name`` with per-sample shape ``s``.

    The *unmerged* ONNX shape ``U`` is ``s`` with the batch axis inserted at ``b``; the spec
    tensor is ``U`` with the batch axis moved to the front. Exporters sometimes merge the batch
    axis with neighbours (``(T, N, D) -> (T*N, D)``): then the ONNX tensor is ``U`` with the
    ``p`` axes before the batch and the ``f`` axes after it merged into one axis (same C-order
    buffer), so only ops that leave that axis alone accept it.
    """

    name: str
    s: tuple[int, ...]
    b: int = 0
    p: int = 0
    f: int = 0

    @property
    def merged(self) -> bool:
        return bool(self.p or self.f)

    @property
    def group(self) -> int:
        """ONNX index of the axis holding the batch."""
        return self.b - self.p

    @property
    def rank(self) -> int:
        """ONNX rank (batch included)."""
        return len(self.s) + 1 - self.p - self.f

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The ONNX shape, ``None`` at the axis holding the batch."""
        u = (*self.s[: self.b], None, *self.s[self.b :])
        return (*u[: self.group], None, *u[self.b + self.f + 1 :])

    def shape_vector(self) -> list[int]:
        """The ONNX shape as ``Shape`` reports it: :data:`BATCH` times the merged dims."""
        merged = 1
        for d in self.s[self.b - self.p : self.b + self.f]:
            merged *= d
        return [BATCH * merged if d is None else d for d in self.shape]

    def u_axis(self, axis: int, node: str, what: str = "axis") -> int:
        """Axis of ``U`` of ONNX ``axis``; a SpecError if it is the axis holding the batch."""
        r = self.rank
        if not -r <= axis < r:
            raise SpecError(f"Node {node!r}: {what}={axis} is out of range for rank {r}")
        a = axis % r
        if a == self.group:
            raise SpecError(
                f"Node {node!r}: {what}={axis} is the batch axis; dlbench specs keep the batch "
                "axis free (ops along it are not supported)"
            )
        return a if a < self.group else a + self.p + self.f

    def spec_axis(self, axis: int, node: str, what: str = "axis") -> int:
        """Batch-inclusive spec axis of ONNX ``axis``; a SpecError if it is the batch axis."""
        a = self.u_axis(axis, node, what)
        return a + 1 if a < self.b else a


def const_per_sample(
    c: np.ndarray, act: Act, node: str, fixed_batch: int | None = None
) -> np.ndarray:
    """A constant operand broadcast against ``act``, in the activation's spec frame (no batch).

    In a graph exported with a fixed batch size, a constant that repeats one sample along the
    batch axis (an attention mask built per sample) is that one sample.
    """
    r = act.rank
    c = np.asarray(c, dtype=np.float32)
    if c.ndim > r:
        raise SpecError(
            f"Node {node!r}: constant of shape {c.shape} has more axes than the activation {act.shape}"
        )
    c = c.reshape((1,) * (r - c.ndim) + c.shape)
    g = act.group
    if (
        fixed_batch is not None
        and not act.merged
        and c.shape[g] == fixed_batch > 1
        and (np.take(c, [0], axis=g) == c).all()
    ):
        c = np.take(c, [0], axis=g)
    if c.shape[g] != 1:
        raise SpecError(
            f"Node {node!r}: constant of shape {c.shape} varies along the batch axis {g}"
        )
    # unmerge: the axis holding the batch becomes p + 1 + f axes of size 1
    c = c.reshape(c.shape[:g] + (1,) * (act.p + 1 + act.f) + c.shape[g + 1 :])
    c = np.moveaxis(c, act.b, 0)[0]
    while c.ndim > 1 and c.shape[0] == 1:
        c = c[0]
    return np.ascontiguousarray(c if c.ndim else c.reshape(1))
