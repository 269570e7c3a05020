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

#: Stand-in for the free batch size inside folded shape vectors.
BATCH = -(2**40) - 7


@dataclass
class Const:
    """A value known at import time."""

    value: np.ndarray


@dataclass
class Act:
    """A value computed at run time: spec tensor ``name`` (per-sample shape ``s``), batch at ``b``."""

    name: str
    s: tuple[int, ...]
    b: int = 0

    @property
    def rank(self) -> int:
        """ONNX rank (batch included)."""
        return len(self.s) + 1

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The ONNX shape, ``None`` at the batch axis."""
        return (*self.s[: self.b], None, *self.s[self.b :])

    def spec_axis(self, axis: int, node: str, what: str = "axis") -> int:
        """Batch-inclusive spec axis of ONNX ``axis``; a SpecError if it is the batch axis."""
        r = self.rank
        if not -r <= axis < r:
            raise SpecError(f"Node {node!r}: {what}={axis} is out of range for rank {r}")
        a = axis % r
        if a == self.b:
            raise SpecError(
                f"Node {node!r}: {what}={axis} is the batch axis; dlbench specs keep the batch "
                "axis free (ops along it are not supported)"
            )
        return a + 1 if a < self.b else a

    def onnx_axis(self, axis: int) -> int:
        return axis % self.rank


def const_per_sample(c: np.ndarray, act: Act, node: str) -> np.ndarray:
    """A constant operand broadcast against ``act``, in the activation's spec frame (no batch)."""
    r = act.rank
    c = np.asarray(c, dtype=np.float32)
    if c.ndim > r:
        raise SpecError(
            f"Node {node!r}: constant of shape {c.shape} has more axes than the activation {act.shape}"
        )
    c = c.reshape((1,) * (r - c.ndim) + c.shape)
    if c.shape[act.b] != 1:
        raise SpecError(
            f"Node {node!r}: constant of shape {c.shape} varies along the batch axis {act.b}"
        )
    c = np.moveaxis(c, act.b, 0)[0]
    while c.ndim > 1 and c.shape[0] == 1:
        c = c[0]
    return np.ascontiguousarray(c if c.ndim else c.reshape(1))
