"""Public import path of :class:`ModelSpec` (it lives in :mod:`dlbench.model.spec`)."""

from dlbench.model.spec import FORMAT, FORMAT_VERSION, ModelSpec, Node, TensorInfo  # noqa: F401

__all__ = ["ModelSpec", "Node", "TensorInfo", "FORMAT", "FORMAT_VERSION"]
