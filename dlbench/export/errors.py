"""Errors raised while exporting to ONNX or loading an ONNX file. All are :class:`BackendError`."""

from __future__ import annotations

from dlbench.errors import BackendError


class ExportError(BackendError):
    """A model could not be exported to ONNX (exporter failure, bad option, missing input shape)."""


class UnsupportedOpError(ExportError):
    """The exporter met an op it cannot express in ONNX at the requested opset."""


class ExportParityError(ExportError):
    """The exported graph runs in ONNX Runtime but its outputs differ from the source model's.

    Attributes:
        report: The :class:`~dlbench.export.core.ExportReport` (the file is kept on disk).
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class OnnxFileError(ExportError):
    """An ONNX file does not exist, is not an ONNX model, or fails ``onnx.checker``."""
