"""The ONNX Runtime backend: a ModelSpec becomes an ONNX graph run by an ``InferenceSession``.

The graph (opset :data:`~dlbench.backends.onnxruntime.ops.OPSET`, valid under
``onnx.checker``) is generated from the spec; the session gets explicit providers, graph
optimisation level, execution mode and thread counts. On CUDA, inputs and outputs stay on the
device through I/O binding and ``sync`` waits for the outputs.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("onnxruntime").build(dlbench.zoo.get("mlp"))
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.options import COMMON_OPTIONS, check_choice, check_common, thread_env
from dlbench.backends.onnxruntime.ops import OPS, OPSET, to_onnx
from dlbench.errors import BackendError
from dlbench.model.backend import Backend, Model, parse_device
from dlbench.model.spec import FLOAT_INPUT, InputDesc, ModelSpec

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXECUTION_MODES = {
    "sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": ort.ExecutionMode.ORT_PARALLEL,
}


class OnnxRuntimeModel(Model):
    #: what ``to_device`` takes (a spec's integer ids stay int64)
    input_desc: InputDesc = FLOAT_INPUT

    def __init__(
        self, backend: OnnxRuntimeBackend, proto: onnx.ModelProto, device: str, name: str
    ) -> None:
        super().__init__(backend, device, name)
        kind, index = parse_device(device)
        self.kind, self.index = kind, index
        self.proto = proto
        self.session = ort.InferenceSession(
            proto.SerializeToString(),
            sess_options=backend.session_options(),
            providers=backend.providers_for(device),
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._weight_bytes = sum(
            int(np.prod(t.dims))
            * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
            for t in proto.graph.initializer
        )

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def to_device(self, batch: np.ndarray) -> Any:
        a = np.ascontiguousarray(self.input_desc.host(batch))
        if self.kind == "cuda":
            return ort.OrtValue.ortvalue_from_numpy(a, "cuda", self.index)
        return a

    def forward(self, x: Any) -> Any:
        if self.kind == "cuda":
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input_name, x)
            for o in self.output_names:
                binding.bind_output(o, "cuda", self.index)
            self.session.run_with_iobinding(binding)
            return binding
        return self.session.run(self.output_names[:1], {self.input_name: x})[0]

    def sync(self, y: Any) -> None:
        if self.kind == "cuda":
            y.synchronize_outputs()

    def to_numpy(self, y: Any) -> np.ndarray:
        if self.kind == "cuda":
            return y.copy_outputs_to_cpu()[0]
        return np.asarray(y)

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime. Options: ``providers`` (None: chosen from the device),
    ``graph_optimization_level`` (disable | basic | extended | all), ``execution_mode``
    (sequential | parallel), ``opset``, plus threads and precision."""

    name: ClassVar[str] = "onnxruntime"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx")
    default_options: ClassVar[dict[str, Any]] = {
        **COMMON_OPTIONS,
        "providers": None,
        "graph_optimization_level": "all",
        "execution_mode": "sequential",
        "opset": OPSET,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_common(self.name, self.options)
        check_choice(self.name, self.options, "graph_optimization_level", tuple(OPT_LEVELS))
        check_choice(self.name, self.options, "execution_mode", tuple(EXECUTION_MODES))
        self._providers: list[str] | None = None
        verify(self.name, self.settings())

    def session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = OPT_LEVELS[self.options["graph_optimization_level"]]
        so.execution_mode = EXECUTION_MODES[self.options["execution_mode"]]
        so.intra_op_num_threads = self.options["intra_op_threads"] or 0
        so.inter_op_num_threads = self.options["inter_op_threads"] or 0
        so.log_severity_level = 3
        return so

    def providers_for(self, device: str) -> list[Any]:
        kind, index = parse_device(device)
        if self.options["providers"] is not None:
            providers = list(self.options["providers"])
        elif kind == "cuda":
            providers = [
                (
                    "CUDAExecutionProvider",
                    {"device_id": index, "use_tf32": int(self.options["precision"] != "float32")},
                ),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        for p in providers:
            pname = p[0] if isinstance(p, tuple) else p
            if pname not in available:
                raise BackendError(
                    f"ONNX Runtime provider {pname!r} is not available here. Available: {available}"
                )
        self._providers = [p[0] if isinstance(p, tuple) else p for p in providers]
        return providers

    def build(self, spec: ModelSpec, device: str = "cpu") -> OnnxRuntimeModel:
        self.check_device(device)
        OPS.check(spec.validate().resolved())
        model = OnnxRuntimeModel(self, to_onnx(spec, self.options["opset"]), device, spec.name)
        model.input_desc = spec.input_desc()
        return model

    def wrap(
        self, native: Any, device: str = "cpu", name: str | None = None, **kwargs: Any
    ) -> OnnxRuntimeModel:
        """Wrap an ONNX model: a path, bytes or an ``onnx.ModelProto`` (checked first; see
        :func:`dlbench.backends.onnxruntime.wrap.wrap_onnx`)."""
        from dlbench.backends.onnxruntime.wrap import wrap_onnx

        return wrap_onnx(self, native, device=device, name=name, **kwargs)

    def devices(self) -> list[str]:
        out = ["cpu"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            out.append("cuda")
        return out

    def versions(self) -> dict[str, str]:
        return {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "opset": str(self.options["opset"]),
        }

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "mode": f"session/{self.options['graph_optimization_level']}",
            "providers_in_force": self._providers or ["CPUExecutionProvider"],
            "available_providers": ort.get_available_providers(),
            "thread_env": thread_env(),
            "versions": self.versions(),
        }
        settings["not_in_force"] = not_in_force(settings)
        return settings
