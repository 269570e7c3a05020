"""Import an ONNX model into a :class:`~dlbench.model.spec.ModelSpec` (opsets 13 to 21).

Initializers become the spec's weights (already in the canonical layouts: ONNX convolutions are
OIHW, activations NCHW; dense weights are transposed to ``(out, in)``), constant subgraphs and
traced shape chains (``Shape -> Gather -> Concat -> Reshape``) are folded with NumPy, shapes are
inferred by the spec itself, and the batch axis stays free. Each ONNX node maps onto ops of the
existing op set (see :mod:`dlbench.model.onnx_import.handlers`); a model using ops that do not
map fails *before* anything is built, listing every unsupported op type with its count and node
names. Only the ``onnx`` package is needed, and it is imported on first use.

Example:
    >>> from dlbench.spec import from_onnx
    >>> spec = from_onnx("resnet20.onnx")  # doctest: +SKIP
    >>> spec.metadata["onnx_import"]["onnx_ops"]  # doctest: +SKIP
    {'Conv': 19, 'Relu': 19, 'Add': 9, ...}
"""

from __future__ import annotations

import os
from typing import Any

from dlbench.model.onnx_import.load import MAX_OPSET, MIN_OPSET

__all__ = ["from_onnx", "supported_ops", "MIN_OPSET", "MAX_OPSET"]


def from_onnx(
    path_or_model: str | os.PathLike[str] | Any,
    name: str | None = None,
    input_shape: tuple[int, ...] | None = None,
):
    """Convert an ONNX model into a validated ModelSpec.

    Args:
        path_or_model: An ``.onnx`` file (external data files must sit in its folder) or an
            ``onnx.ModelProto``.
        name: Name of the spec (default: the file's stem or the graph's name).
        input_shape: Per-sample shape of the first input, for models whose non-batch axes are
            symbolic (e.g. ``(3, 224, 224)``).

    Returns:
        A :class:`~dlbench.model.spec.ModelSpec`; ``metadata["onnx_import"]`` records the opset,
        the producer, the ONNX ops mapped, the spec ops produced, and what was folded or fused.

    Raises:
        SpecError: the file is corrupt or hostile, the opset is outside 13..21, an op has no
            mapping (the message lists all of them), or a node uses a form the op set cannot
            express (named in the message).
        MissingFrameworkError: the ``onnx`` package is not installed.
    """
    from dlbench.model.onnx_import.convert import Converter
    from dlbench.model.onnx_import.load import load_model

    model, default_name = load_model(path_or_model)
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    return Converter(model, name or default_name, shape).run()


def supported_ops() -> list[str]:
    """The ONNX op types the importer maps (constant subgraphs may use any standard op)."""
    from dlbench.model.onnx_import.handlers import HANDLERS

    return sorted(HANDLERS)
