"""Public import path of :class:`ModelSpec` (it lives in :mod:`dlbench.model.spec`) and of
:func:`from_onnx` (in :mod:`dlbench.model.onnx_import`; it imports ``onnx`` only when called)."""

from dlbench.model.onnx_import import from_onnx  # noqa: F401
from dlbench.model.spec import FORMAT, FORMAT_VERSION, ModelSpec, Node, TensorInfo  # noqa: F401

__all__ = ["ModelSpec", "Node", "TensorInfo", "FORMAT", "FORMAT_VERSION", "from_onnx"]
