"""``OnnxRuntimeBackend.wrap``: an ONNX file (or ``onnx.ModelProto`` / bytes) as a dlbench Model.

The file is checked before a session is made: it must exist, parse, pass ``onnx.checker``, have
one float tensor input and a tensor as its first output. The per-sample input shape comes from
the graph when its dimensions are fixed, or from ``input_shape``; a mismatch between the two, or
between the model and a batch of data, is a clear error.

Example:
    >>> m = dlbench.get_backend("onnxruntime").wrap("model.onnx")  # doctest: +SKIP
    >>> m.predict(np.zeros((4, 3, 32, 32), np.float32)).shape  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from dlbench.backends.common.wrapping import (
    check_batch,
    check_input_shape,
    check_wrap_kwargs,
    describe,
)
from dlbench.backends.onnxruntime.backend import OnnxRuntimeModel
from dlbench.detection.wrapped import attach_detection, detector_settings
from dlbench.errors import BackendError
from dlbench.export.graph import load_onnx
from dlbench.model.spec import InputDesc


class WrappedOnnxModel(OnnxRuntimeModel):
    """An ONNX model from outside dlbench; batches are checked against its input shape."""

    def __init__(self, backend: Any, proto: Any, device: str, name: str, input_shape: Any) -> None:
        try:
            super().__init__(backend, proto, device, name)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(
                f"ONNX Runtime cannot load model {name!r}: {describe(exc)}"
            ) from None
        self.input_shape = input_shape
        dims = _dims(_graph_input(proto))
        self.fixed_batch = dims[0] if dims else None

    def to_device(self, batch: np.ndarray) -> Any:
        check_batch(self, batch)
        n = len(batch)
        if self.fixed_batch is not None and n != self.fixed_batch:
            raise BackendError(
                f"The ONNX model {self.name!r} was exported for batches of exactly "
                f"{self.fixed_batch}. Received a batch of {n}; export it with a dynamic batch axis."
            )
        return super().to_device(batch)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "wrapped": True, "input_shape": self.input_shape}


class WrappedOnnxDetector(WrappedOnnxModel):
    """A user's detector as an ONNX file: every graph output is computed and comes back to the
    host, one array (a single output) or a dict by output name, for its post-processing
    (:mod:`dlbench.detection.wrapped`)."""

    def forward(self, x: Any) -> Any:
        if self.kind == "cuda":
            return super().forward(x)  # the I/O binding already binds every output
        return self.session.run(self.output_names, {self.input_name: x})

    def to_numpy(self, y: Any) -> Any:
        arrays = y.copy_outputs_to_cpu() if self.kind == "cuda" else y
        arrays = [np.asarray(a) for a in arrays]
        if len(arrays) == 1:
            return arrays[0]
        return dict(zip(self.output_names, arrays))

    def settings(self) -> dict[str, Any]:
        return detector_settings(self, super().settings())


def _graph_input(proto: onnx.ModelProto) -> onnx.ValueInfoProto:
    init = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise BackendError(
            "Expected an ONNX model with one input (dlbench feeds one batch tensor). Received "
            f"{len(inputs)} inputs: {[i.name for i in inputs]}"
        )
    return inputs[0]


def _dims(vi: onnx.ValueInfoProto) -> list[int | None]:
    return [
        int(d.dim_value) if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim
    ]


def wrap_onnx(
    backend: Any,
    native: Any,
    device: str = "cpu",
    name: str | None = None,
    input_shape: Any = None,
    detection: Any = None,
    **kwargs: Any,
) -> WrappedOnnxModel:
    """Wrap an ONNX model given as a path, bytes or an ``onnx.ModelProto``.

    Args:
        input_shape: Per-sample input shape (NCHW for images). Optional when the graph fixes
            every non-batch dimension; checked against the graph when both are known.
        detection: A detector's outputs: a :class:`dlbench.detection.DetectorOutputs` (its
            function gets one array, or a dict by output name when the graph has several) or
            a :class:`dlbench.detection.Decoder` (see :mod:`dlbench.detection.wrapped`); one
            probe batch runs through the model and the post-processing now.

    Raises:
        OnnxFileError: the file is missing, not ONNX, or fails ``onnx.checker``.
        BackendError: several inputs, a non-float input, a first output that is not a tensor,
            ``input_shape`` against the graph, or ONNX Runtime refusing the model.
    """
    check_wrap_kwargs("onnxruntime", kwargs, "device, name, input_shape, detection")
    proto = load_onnx(native)
    backend.check_device(device)
    vi = _graph_input(proto)
    if not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type not in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.INT64,
    ):
        raise BackendError(
            f"Expected the ONNX model's input {vi.name!r} to be a float32 tensor or int64 token "
            f"ids. Received: {onnx.helper.printable_type(vi.type)}"
        )
    out = proto.graph.output[0]
    if not out.type.HasField("tensor_type"):
        raise BackendError(
            f"Expected the ONNX model's first output {out.name!r} to be a tensor. Received: "
            f"{onnx.helper.printable_type(out.type)}"
        )
    dims = _dims(vi)
    shape = check_input_shape(input_shape)
    if dims:
        per_sample = dims[1:]
        if shape is not None and (
            len(per_sample) != len(shape)
            or any(d is not None and d != s for d, s in zip(per_sample, shape))
        ):
            raise BackendError(
                f"The ONNX model's input {vi.name!r} has per-sample shape "
                f"{tuple('?' if d is None else d for d in per_sample)}. Received: "
                f"input_shape={shape}"
            )
        if shape is None and per_sample and all(d is not None for d in per_sample):
            shape = tuple(int(d) for d in per_sample)  # type: ignore[arg-type]
    label = name or proto.graph.name or (str(native) if isinstance(native, str) else "onnx")
    if detection is not None:
        model = WrappedOnnxDetector(backend, proto, device, label, shape)
        return attach_detection(model, detection)
    model = WrappedOnnxModel(backend, proto, device, label, shape)
    if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:  # token ids, passed untouched
        model.input_desc = InputDesc(vi.name, "int64")
    return model
