"""ONNX Runtime at reduced precision: the float32 graph of the spec, converted.

- ``float16``: every float initializer and op cast to float16 by ONNX Runtime's own converter
  (``onnxruntime.transformers.float16.convert_float_to_float16``, inputs and outputs kept
  float32), on CPU and CUDA. A cast, not autocast: ONNX has no autocast.
- ``bfloat16``: skipped on CPU (the CPU execution provider has no bfloat16 MatMul/Conv/Add
  kernels: NOT_IMPLEMENTED at session creation) and on CUDA (no converter for it here).
- ``int8``: ``onnxruntime.quantization`` after ``quant_pre_process``. Option ``quantization``:
  ``static`` (default: QDQ format, per-channel int8 weights, uint8 activations calibrated with
  MinMax on the run's calibration batch; ``reduce_range`` (7-bit weights) on an x86 CPU without
  VNNI, as ONNX Runtime advises, to avoid saturating 16-bit accumulations) or ``dynamic``
  (``quantize_dynamic``: int8 weights, activations quantized at run time; no calibration).

Quantization is deterministic: the same calibration data gives the same bytes
(tests/precision/test_calibration.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

from dlbench.backends.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeModel
from dlbench.backends.onnxruntime.ops import OPS, to_onnx
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.backend import parse_device
from dlbench.model.spec import ModelSpec

#: Calibration samples per ``get_next`` call of the reader.
CALIBRATION_BATCH = 32


class PrecisionOnnxModel(OnnxRuntimeModel):
    """An ONNX Runtime session on a converted (float16) or quantized (int8) graph."""

    def __init__(
        self,
        backend: OnnxRuntimeBackend,
        proto: onnx.ModelProto,
        device: str,
        name: str,
        info: dict[str, Any],
    ) -> None:
        super().__init__(backend, proto, device, name)
        self.precision_info = {**info, "model_bytes": len(proto.SerializeToString())}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), **self.precision_info}


def _has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (u8 x s8 dot products without saturation)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class _Reader:
    """A ``CalibrationDataReader``: the calibration batch in chunks of :data:`CALIBRATION_BATCH`."""

    def __init__(self, input_name: str, data: np.ndarray) -> None:
        self.input_name = input_name
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self._it: Iterator[np.ndarray] = self._chunks()

    def _chunks(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.data), CALIBRATION_BATCH):
            yield self.data[i : i + CALIBRATION_BATCH]

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._it, None)
        return None if chunk is None else {self.input_name: chunk}

    def rewind(self) -> None:
        self._it = self._chunks()


def float16_proto(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with float16 weights and compute, float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    return convert_float_to_float16(copy, keep_io_types=True)


def quantize(
    proto: onnx.ModelProto, method: str, calibration: np.ndarray | None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """``(int8 proto, settings)``: ``proto`` quantized by ``method`` (static | dynamic)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="dlbench-ort-int8-") as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("f32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(proto, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        if method == "dynamic":
            quantize_dynamic(pre, out, weight_type=QuantType.QInt8)
            info = {"method": "dynamic", "weight_type": "int8", "activations": "uint8, at run time"}
        else:
            if calibration is None or len(calibration) == 0:
                raise ValueError(
                    "Expected calibration data for static quantization. Received: none"
                )
            reduce_range = not _has_vnni()
            quantize_static(
                pre,
                out,
                _Reader(proto.graph.input[0].name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            info = {
                "method": "static",
                "format": "QDQ",
                "per_channel": True,
                "reduce_range": reduce_range,
                "weight_type": "int8",
                "activation_type": "uint8",
                "calibrate_method": "MinMax",
                "calibration_samples": int(len(calibration)),
            }
        return onnx.load(out), info


def build_precision(
    backend: OnnxRuntimeBackend,
    spec: ModelSpec,
    device: str,
    precision: str,
    calibration: np.ndarray | None = None,
) -> OnnxRuntimeModel:
    """``spec`` in ONNX Runtime at ``precision`` (see the module docstring).

    Raises:
        UnsupportedPrecision: bfloat16, or a converted graph ONNX Runtime cannot run here.
    """
    backend.check_device(device)
    kind, _ = parse_device(device)
    OPS.check(spec.validate().resolved())
    proto = to_onnx(spec, backend.options["opset"])
    if precision == "bfloat16":
        why = (
            "the CPU execution provider has no bfloat16 kernels (MatMul/Conv/Add: NOT_IMPLEMENTED)"
            if kind == "cpu"
            else "dlbench has no bfloat16 graph converter for ONNX (float16 is the 16-bit row)"
        )
        raise UnsupportedPrecision(backend.name, precision, device, why)
    if precision == "float16":
        converted = float16_proto(proto)
        info = {"precision_in_force": "float16", "how": "cast (float16 graph, float32 I/O)"}
    elif precision == "int8":
        converted, quant = quantize(proto, backend.options["quantization"], calibration)
        info = {"precision_in_force": "int8", "how": "post-training quantization", **quant}
    else:
        raise UnsupportedPrecision(backend.name, precision, device, "not a reduced precision")
    try:
        return PrecisionOnnxModel(backend, converted, device, spec.name, info)
    except Exception as exc:  # a kernel missing on this provider: said, not failed
        if "NOT_IMPLEMENTED" in str(exc) or "Could not find an implementation" in str(exc):
            raise UnsupportedPrecision(
                backend.name, precision, device, f"ONNX Runtime: {str(exc)[:300]}"
            ) from None
        raise
