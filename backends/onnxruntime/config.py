"""The onnxruntime backend's manifest (framework-free: nothing here imports onnxruntime)."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.model.manifest import (
    BackendManifest,
    BackendOptions,
    check_choice,
    check_type,
    conventional_capabilities,
)

_B = "dlbench.backends.onnxruntime"
OPT_LEVELS = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")
POSTPROCESS = ("native", "numpy")


@dataclass
class OnnxRuntimeOptions(BackendOptions):
    """``providers`` (None: chosen from the device), ``graph_optimization_level``,
    ``execution_mode``, ``opset`` (of the graph built from a spec; None: the backend's),
    ``postprocess`` (native | numpy: a detector's post-processing as an ONNX graph with
    ``NonMaxSuppression`` in ONNX Runtime, or the float64 NumPy reference)."""

    providers: list | None = None
    graph_optimization_level: str = "all"
    execution_mode: str = "sequential"
    opset: int | None = None
    postprocess: str = "native"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_type(self.backend, "providers", self.providers, (list, tuple, type(None)))
        check_choice(
            self.backend, "graph_optimization_level", self.graph_optimization_level, OPT_LEVELS
        )
        check_choice(self.backend, "execution_mode", self.execution_mode, EXECUTION_MODES)
        check_type(self.backend, "opset", self.opset, (int, type(None)))
        check_choice(self.backend, "postprocess", self.postprocess, POSTPROCESS)


MANIFEST = BackendManifest(
    name="onnxruntime",
    requires=("onnxruntime", "onnx"),
    extra="onnx",
    capabilities=conventional_capabilities(_B, "OnnxRuntimeBackend", wrap="wrap_onnx"),
    options=OnnxRuntimeOptions,
    distributions={
        "onnx": ("onnx",),
        "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-silicon"),
    },
    # "Failed to allocate memory for requested buffer"; std::bad_alloc
    oom_messages=("failed to allocate memory", "bad_alloc", "bad allocation"),
    native_modules={"onnx": "an ONNX model", "onnxruntime": "an ONNX Runtime session"},
    runs_onnx=True,
    priority=3,
    frees_activations=True,
)
