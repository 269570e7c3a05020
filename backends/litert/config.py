"""The litert backend's manifest (framework-free: nothing here imports tensorflow or LiteRT).

LiteRT (formerly TensorFlow Lite) is the runtime of phones and microcontrollers: the spec is
built as a TensorFlow module (the tensorflow backend's build), converted by TensorFlow's TFLite
converter, and run by the ``ai-edge-litert`` interpreter (XNNPACK by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.model.manifest import (
    BackendManifest,
    BackendOptions,
    check_type,
    conventional_capabilities,
)

_B = "dlbench.backends.litert"


@dataclass
class LiteRTOptions(BackendOptions):
    """``xnnpack`` (use the XNNPACK delegate, LiteRT's default CPU path; False: the builtin
    kernels only), ``isolate_converter`` (convert in a separate process, so the worker's memory
    is the interpreter's and not TensorFlow's; False: convert in this process, faster to build)."""

    xnnpack: bool = True
    isolate_converter: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_type(self.backend, "xnnpack", self.xnnpack, (bool,))
        check_type(self.backend, "isolate_converter", self.isolate_converter, (bool,))


def worker_env(intra: int, inter: int) -> dict[str, str]:
    """The converter runs TensorFlow (quietly, on the same thread count); the interpreter takes
    its thread count as an argument."""
    return {
        "TF_NUM_INTRAOP_THREADS": str(intra),
        "TF_NUM_INTEROP_THREADS": str(inter),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


MANIFEST = BackendManifest(
    name="litert",
    requires=("tensorflow", "ai_edge_litert"),
    extra="litert",
    capabilities=conventional_capabilities(_B, "LiteRTBackend"),
    options=LiteRTOptions,
    worker_env=worker_env,
    env_vars=("TF_NUM_INTRAOP_THREADS",),
    distributions={
        "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
    },
    oom_messages=("failed to allocate",),
    priority=5,
    frees_activations=True,
)
