"""What an exporter is asked for: one value passed to every backend's ``export`` capability."""

from __future__ import annotations

from dataclasses import astuple, dataclass


@dataclass(frozen=True)
class ExportRequest:
    """The ONNX graph a backend's exporter must produce.

    Attributes:
        input_shape: Per-sample input shape, NCHW (the graph input is ``(N, *input_shape)``).
        opset: ONNX opset.
        dynamic_batch: Leave the batch axis free (else fixed to ``batch_size``).
        batch_size: The batch size of a fixed-batch export.
        input_names: Graph input names (one).
        output_names: Graph output names.
        exporter: Which of the backend's exporters to use.
    """

    input_shape: tuple[int, ...]
    opset: int
    dynamic_batch: bool
    batch_size: int
    input_names: list[str]
    output_names: list[str]
    exporter: str

    def unpack(self) -> tuple:
        """``(input_shape, opset, dynamic_batch, batch_size, input_names, output_names,
        exporter)``."""
        return astuple(self)
