"""The tensorflow backend's manifest (framework-free: nothing here imports tensorflow)."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.backends.jax.config import xla_cpu_env
from dlbench.model.manifest import (
    BackendManifest,
    BackendOptions,
    check_choice,
    conventional_capabilities,
)

_B = "dlbench.backends.tensorflow"
MODES = ("eager", "graph", "xla")
POSTPROCESS = ("native", "numpy")


@dataclass
class TensorFlowOptions(BackendOptions):
    """``mode`` (eager | graph | xla), ``postprocess`` (native | numpy: a detector's
    post-processing in TensorFlow or the float64 NumPy reference)."""

    mode: str = "graph"
    postprocess: str = "native"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.backend, "mode", self.mode, MODES)
        check_choice(self.backend, "postprocess", self.postprocess, POSTPROCESS)


def worker_env(intra: int, inter: int) -> dict[str, str]:
    """TensorFlow reads its thread pools, log level and GPU growth from the environment at
    import; its ``xla`` mode compiles with XLA:CPU (same flags as jax)."""
    return {
        "TF_NUM_INTRAOP_THREADS": str(intra),
        "TF_NUM_INTEROP_THREADS": str(inter),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        **xla_cpu_env(intra),
    }


MANIFEST = BackendManifest(
    name="tensorflow",
    requires=("tensorflow",),
    extra="tensorflow",
    capabilities=conventional_capabilities(
        _B, "TensorFlowBackend", wrap="wrap_model", export=True, train=True
    ),
    options=TensorFlowOptions,
    worker_env=worker_env,
    env_vars=(
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "TF_ENABLE_ONEDNN_OPTS",
        "TF_FORCE_GPU_ALLOW_GROWTH",
    ),
    distributions={
        "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
        "keras": ("keras",),
    },
    # tf.errors.ResourceExhaustedError ("OOM when allocating tensor ...")
    oom_types=("ResourceExhaustedError",),
    oom_messages=("oom when allocating",),
    native_modules={
        "keras": "a Keras model",
        "tf_keras": "a Keras model",
        "tensorflow": "a TensorFlow model or function",
    },
    exporters={"tf2onnx": ("tf2onnx",)},
    module_extras={"tf2onnx": "export"},
    priority=1,
    sorted_dict_outputs=True,  # its exporter flattens a dict output in sorted key order
)
