"""Export to ONNX from PyTorch, TensorFlow and JAX, checked against the source model.

``import dlbench.export`` imports no framework; the source framework and ONNX are imported when
a model is exported.

Example:
    >>> import dlbench
    >>> from dlbench.export import to_onnx, summarize
    >>> report = to_onnx(dlbench.zoo.get("mlp"), "mlp.onnx", source="torch")  # doctest: +SKIP
    >>> report.parity["ok"], report.opset  # doctest: +SKIP
    (True, 18)
    >>> summarize("mlp.onnx")["op_counts"]  # doctest: +SKIP
"""

from __future__ import annotations

from dlbench.export.core import PARITY_BATCH, ExportReport, to_onnx
from dlbench.export.errors import (
    ExportError,
    ExportParityError,
    OnnxFileError,
    UnsupportedOpError,
)
from dlbench.export.graph import summarize
from dlbench.export.requirements import DEFAULT_OPSET, EXPORTERS, SOURCES

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "PARITY_BATCH",
    "SOURCES",
    "ExportError",
    "ExportParityError",
    "ExportReport",
    "OnnxFileError",
    "UnsupportedOpError",
    "summarize",
    "to_onnx",
]
