"""The LiteRT backend: a ModelSpec becomes a ``.tflite`` flatbuffer run by the LiteRT interpreter.

The spec is built as the tensorflow backend's ``tf.Module`` (NHWC inside, canonical outputs),
traced to a concrete function with a dynamic batch, converted by ``tf.lite.TFLiteConverter``
and run by ``ai_edge_litert.interpreter.Interpreter`` (``num_threads`` = the intra-op threads;
XNNPACK unless ``xnnpack=False``). Precisions (option ``precision``):

- ``float32``: the plain conversion.
- ``float16``: float16 weights (``Optimize.DEFAULT`` + ``supported_types=[tf.float16]``); the
  CPU kernels dequantize them to float32 (XNNPACK may compute in float16 where the CPU has it).
- ``int8``: ``quantization="static"`` (default): full-integer quantization, int8 weights and
  activations calibrated with a representative dataset (the run's calibration batch, one
  sample at a time), ``TFLITE_BUILTINS_INT8`` only, float32 input and output (the model
  quantizes its input and dequantizes its output itself, inside the timed call);
  ``quantization="dynamic"``: dynamic-range quantization (int8 weights, no calibration).
- ``bfloat16``: not offered by the TFLite converter (skipped with that reason).

By default the conversion runs in a separate process (``isolate_converter``): TensorFlow is never
imported into the worker, whose memory is then the interpreter's alone, as on a device.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("litert").build(dlbench.zoo.get("mlp"))  # doctest: +SKIP
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (2, 10)
"""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import os
import re
import tempfile
from typing import Any, ClassVar

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.options import COMMON_OPTIONS, check_common, thread_env
from dlbench.backends.common.weights import nchw_to_nhwc
from dlbench.errors import BackendError, ConfigError
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.backend import Backend, Model, parse_device
from dlbench.model.spec import FLOAT_INPUT, ModelSpec

#: Precisions the TFLite converter produces.
CONVERTER_PRECISIONS = ("float32", "float16", "int8")


def _tf_version() -> str | None:
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def convert(
    spec: ModelSpec,
    precision: str,
    quantization: str = "static",
    calibration: np.ndarray | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """``(flatbuffer, info)``: ``spec`` converted to TFLite at ``precision`` in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from dlbench.backends.tensorflow.backend import SpecModule

    spec = spec.validate()
    if len(spec.input_shape) not in (1, 2, 3):
        raise BackendError(
            f"Expected a spec with one (C,), (T, F) or (C, H, W) input. Received: {spec.input_shape}"
        )
    with tf.device("/CPU:0"):
        module = SpecModule(spec)
    shape = [None, *spec.input_shape]
    if module.input_rank == 4:
        c, h, w = spec.input_shape
        shape = [None, h, w, c]
    dtype = tf.int64 if spec.input_desc().integer else tf.float32  # token ids stay int64
    fn = tf.function(module.__call__, input_signature=[tf.TensorSpec(shape, dtype)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], module
    )
    info: dict[str, Any] = {"converter": f"tf.lite.TFLiteConverter (tensorflow {tf.__version__})"}
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        info["how"] = "float16 weights (Optimize.DEFAULT, supported_types=[float16])"
    elif precision == "int8" and quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        info.update(method="dynamic", how="dynamic-range quantization: int8 weights")
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError(
                "Expected calibration data for full-integer quantization. Received: none"
            )
        data = np.ascontiguousarray(calibration, dtype=np.float32)
        if module.input_rank == 4:
            data = nchw_to_nhwc(data)

        def representative() -> Any:
            for i in range(len(data)):
                yield [data[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        info.update(
            method="static",
            how="full-integer quantization (TFLITE_BUILTINS_INT8), float32 I/O",
            calibration_samples=int(len(data)),
        )
    try:
        blob = bytes(converter.convert())
    except Exception as exc:  # an op LiteRT's builtin kernels do not have: say which
        text = str(exc)
        missing = sorted(
            set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text))
        )
        if missing:
            raise BackendError(
                f"LiteRT's builtin kernels have no {', '.join(missing)} (TensorFlow's Flex "
                "delegate would be needed, which ai-edge-litert does not ship): "
                f"{spec.name} cannot run on the litert backend"
            ) from None
        raise
    return blob, info


def _convert_job(args: tuple[str, str, str, str | None]) -> tuple[bytes, dict[str, Any]]:
    spec_path, precision, quantization, calib_path = args
    spec = ModelSpec.load(spec_path)
    calibration = np.load(calib_path, allow_pickle=False) if calib_path else None
    return convert(spec, precision, quantization, calibration)


def convert_isolated(
    spec: ModelSpec,
    precision: str,
    quantization: str = "static",
    calibration: np.ndarray | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """:func:`convert` in a fresh (spawned) process: TensorFlow never enters this one."""
    with tempfile.TemporaryDirectory(prefix="dlbench-litert-") as tmp:
        spec_path = os.path.join(tmp, "model.json")
        spec.save(spec_path)
        calib_path = None
        if calibration is not None:
            calib_path = os.path.join(tmp, "calibration.npy")
            np.save(calib_path, np.asarray(calibration, dtype=np.float32), allow_pickle=False)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            return pool.apply(_convert_job, ((spec_path, precision, quantization, calib_path),))


class LiteRTModel(Model):
    """A ``.tflite`` flatbuffer in a LiteRT interpreter; the batch size is set on first use."""

    def __init__(
        self,
        backend: LiteRTBackend,
        blob: bytes,
        device: str,
        name: str,
        nhwc: bool,
        info: dict[str, Any],
        input_desc: Any = FLOAT_INPUT,
    ) -> None:
        super().__init__(backend, device, name)
        self.input_desc = input_desc
        self.blob = blob
        self.nhwc = nhwc
        self.info = info
        resolver = (
            OpResolverType.AUTO
            if backend.options["xnnpack"]
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        self.interpreter = Interpreter(
            model_content=blob,
            num_threads=backend.options["intra_op_threads"],
            experimental_op_resolver_type=resolver,
        )
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._shape: tuple[int, ...] | None = None
        self._weight_bytes = _weight_bytes(self.interpreter)

    def _ensure_shape(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            self.interpreter.resize_tensor_input(self._in["index"], list(shape), strict=False)
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]
            self._out = self.interpreter.get_output_details()[0]
            self._shape = shape

    def to_device(self, batch: np.ndarray) -> np.ndarray:
        a = self.input_desc.host(batch)  # float32, or int64 token ids (checked)
        if self.nhwc:
            a = nchw_to_nhwc(a)
        return np.ascontiguousarray(a)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._ensure_shape(tuple(x.shape))
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def sync(self, y: Any) -> None:
        return None  # invoke() returns when the output is computed

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            **self.info,
            "model_bytes": len(self.blob),
            "precision_in_force": self.backend.options["precision"],
            "layout": "NHWC" if self.nhwc else "canonical",
        }


def _weight_bytes(interpreter: Interpreter) -> int:
    """Bytes of the flatbuffer's constant tensors (weights, biases, quantization tables): before
    ``allocate_tensors`` only constants have data (the others raise ``ValueError``)."""
    total = 0
    for d in interpreter.get_tensor_details():
        try:
            total += int(interpreter.get_tensor(d["index"]).nbytes)
        except ValueError:
            continue
    return total


class LiteRTBackend(Backend):
    """LiteRT. Options: ``xnnpack`` (bool), ``isolate_converter`` (bool), plus threads,
    precision (float32 | float16 | int8) and ``quantization`` (static | dynamic)."""

    name: ClassVar[str] = "litert"
    requires: ClassVar[tuple[str, ...]] = ("tensorflow", "ai_edge_litert")
    default_options: ClassVar[dict[str, Any]] = {
        **COMMON_OPTIONS,
        "xnnpack": True,
        "isolate_converter": True,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_common(self.name, self.options)
        for key in ("xnnpack", "isolate_converter"):
            if not isinstance(self.options[key], bool):
                raise ConfigError(
                    f"Backend {self.name!r}: expected `{key}` to be true or false. "
                    f"Received: {key}={self.options[key]!r}"
                )
        verify(self.name, self.settings())

    def build(
        self, spec: ModelSpec, device: str = "cpu", calibration: np.ndarray | None = None
    ) -> LiteRTModel:
        """The spec converted at the ``precision`` option (int8: ``calibration`` inputs, NCHW
        float32, for the representative dataset of static quantization)."""
        self.check_device(device)
        precision = self.options["precision"]
        if precision not in CONVERTER_PRECISIONS:
            raise UnsupportedPrecision(
                self.name, precision, device, "the TFLite converter has no bfloat16 target"
            )
        kind, _ = parse_device(device)
        if kind != "cpu":
            raise BackendError(f"Backend 'litert' runs on the CPU only. Received: {device!r}")
        job = convert_isolated if self.options["isolate_converter"] else convert
        blob, info = job(spec, precision, self.options["quantization"], calibration)
        nhwc = len(spec.input_shape) == 3
        return LiteRTModel(self, blob, device, spec.name, nhwc, info, spec.input_desc())

    def devices(self) -> list[str]:
        return ["cpu"]

    def versions(self) -> dict[str, str]:
        out = {"ai_edge_litert": importlib.metadata.version("ai-edge-litert")}
        tf_version = _tf_version()
        if tf_version:
            out["tensorflow (converter)"] = tf_version
        return out

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "intra_op_threads_in_force": self.options["intra_op_threads"],
            "delegate": "XNNPACK" if self.options["xnnpack"] else "builtin kernels",
            "thread_env": thread_env(),
            "versions": self.versions(),
        }
        settings["not_in_force"] = not_in_force(settings)
        return settings
