"""The handler registry: one function per ONNX op maps a node onto ops of the spec op set.

A handler gets the converter, the node, a label for messages and the node's attributes, and
returns the values of the node's outputs (:class:`Act` or :class:`Const`). What a spec op cannot
express (an op along the batch axis, asymmetric pool padding, a non-integer resize...) is a
:class:`SpecError` naming the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.errors import SpecError
from dlbench.model.onnx_import.values import Act
from dlbench.model.ops import same_pads

Handler = Callable[[Any, Any, str, dict[str, Any]], list[Any]]
HANDLERS: dict[str, Handler] = {}
#: A slice of the batch axis from 0 with an end at least this large keeps the whole batch
#: (exporters write INT64_MAX, INT32_MAX or 1e9 for "to the end").
_TO_END = 10**9


def handles(*ops: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for op in ops:
            HANDLERS[op] = fn
        return fn

    return deco


def _fail(label: str, op: str, message: str) -> SpecError:
    return SpecError(f"Node {label!r} ({op}): {message}")


def _nchw(cv: Any, n: Any, label: str) -> Act:
    x = cv.act(n.input[0], label)
    if x.b != 0 or x.rank != 4:
        raise _fail(
            label,
            n.op_type,
            f"expected a batch-first NCHW input (rank 4). Received shape {x.shape} "
            "(only 2-D convolution and pooling are supported)",
        )
    return x


def _conv_pads(label, op, attrs, kernel, stride, dilation, hw) -> list[int]:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(p) != 4:
            raise _fail(label, op, f"expected 4 pads for 2-D. Received: {p}")
        return [p[0], p[2], p[1], p[3]]  # ONNX (t, l, b, r) -> spec (t, b, l, r)
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(hw, kernel, stride, dilation):
            a, b = same_pads(size, k, s, d)
            out += [a, b] if auto == "SAME_UPPER" else [b, a]
        return out
    raise _fail(label, op, f"unknown auto_pad {auto!r}")


def _weight_name(cv, onnx_name: str, array: np.ndarray, hint: str, tag: str = "") -> str:
    """The spec weight for ONNX value ``onnx_name`` (transformed as ``tag`` says): one weight per
    (value, transform), however many nodes use it, named after its initializer when unchanged."""
    key = (onnx_name, tag)
    if key not in cv.param_cache:
        plain = not tag and onnx_name in cv.initializer_names
        cv.param_cache[key] = cv.param(onnx_name if plain else hint, array)
    return cv.param_cache[key]


# the handler families register themselves on import
from dlbench.model.onnx_import import (  # noqa: E402, F401
    map_control,
    map_layers,
    map_shape,
    map_spatial,
)
