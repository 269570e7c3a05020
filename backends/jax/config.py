"""The jax backend's manifest (framework-free: nothing here imports jax)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dlbench.model.manifest import (
    BackendManifest,
    BackendOptions,
    check_choice,
    conventional_capabilities,
)

_B = "dlbench.backends.jax"
MODES = ("jit", "eager")
POSTPROCESS = ("native", "numpy")


@dataclass
class JaxOptions(BackendOptions):
    """``mode`` (jit | eager), ``postprocess`` (native | numpy: a detector's post-processing in
    JAX or the float64 NumPy reference)."""

    mode: str = "jit"
    postprocess: str = "native"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.backend, "mode", self.mode, MODES)
        check_choice(self.backend, "postprocess", self.postprocess, POSTPROCESS)


def xla_cpu_env(intra: int) -> dict[str, str]:
    """``XLA_FLAGS`` for an intra-op thread count. XLA:CPU has no intra-op knob other than
    turning Eigen's pool off (= 1 thread); flags the user already set are kept. Used by every
    backend that compiles with XLA (jax; TensorFlow's ``xla`` mode)."""
    xla = os.environ.get("XLA_FLAGS", "")
    if intra == 1 and "xla_cpu_multi_thread_eigen" not in xla:
        xla = (xla + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    return {"XLA_FLAGS": xla} if xla else {}


def worker_env(intra: int, inter: int) -> dict[str, str]:
    """No GPU memory grabbed up front (other frameworks may share the device), XLA threads."""
    return {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **xla_cpu_env(intra)}


MANIFEST = BackendManifest(
    name="jax",
    requires=("jax",),
    extra="jax",
    capabilities=conventional_capabilities(
        _B, "JaxBackend", wrap="wrap_function", export=True, train=True
    ),
    options=JaxOptions,
    worker_env=worker_env,
    env_vars=(
        "XLA_FLAGS",
        "XLA_PYTHON_CLIENT_PREALLOCATE",
        "XLA_PYTHON_CLIENT_MEM_FRACTION",
        "JAX_PLATFORMS",
        "JAX_ENABLE_X64",
    ),
    distributions={"jax": ("jax",), "jaxlib": ("jaxlib",)},
    # XlaRuntimeError: RESOURCE_EXHAUSTED
    oom_messages=("resource_exhausted", "resource exhausted"),
    native_modules={
        "jax": "a JAX function",
        "jaxlib": "a JAX function",
        "flax": "a Flax module",
        "equinox": "an Equinox module",
        "haiku": "a Haiku module",
    },
    exporters={"jax2onnx": ("jax2onnx",)},
    module_extras={"jax2onnx": "export"},
    priority=2,
    sorted_dict_outputs=True,  # its exporter flattens a dict output in sorted key order
)
