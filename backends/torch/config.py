"""The torch backend's manifest (framework-free: nothing here imports torch)."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.model.manifest import (
    BackendManifest,
    BackendOptions,
    check_choice,
    check_type,
    conventional_capabilities,
)

_B = "dlbench.backends.torch"
MODES = ("eager", "compile")
POSTPROCESS = ("native", "numpy")


@dataclass
class TorchOptions(BackendOptions):
    """``mode`` (eager | compile), ``compile_mode`` (torch.compile's mode, e.g.
    "max-autotune"; None for its default), ``inference_mode``, ``channels_last``,
    ``postprocess`` (native | numpy: a detector's post-processing in torch or the float64 NumPy
    reference)."""

    mode: str = "eager"
    compile_mode: str | None = None
    inference_mode: bool = True
    channels_last: bool = False
    postprocess: str = "native"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.backend, "mode", self.mode, MODES)
        check_type(self.backend, "compile_mode", self.compile_mode, (str, type(None)))
        check_type(self.backend, "inference_mode", self.inference_mode, (bool,))
        check_type(self.backend, "channels_last", self.channels_last, (bool,))
        check_choice(self.backend, "postprocess", self.postprocess, POSTPROCESS)


MANIFEST = BackendManifest(
    name="torch",
    requires=("torch",),
    extra="torch",
    capabilities=conventional_capabilities(
        _B, "TorchBackend", wrap="wrap_module", export=True, train=True
    ),
    options=TorchOptions,
    env_vars=("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",),
    distributions={"torch": ("torch",)},
    # torch.cuda.OutOfMemoryError; older torch: RuntimeError "CUDA out of memory" (generic);
    # cuDNN / cuBLAS allocation failures.
    oom_types=("OutOfMemoryError",),
    oom_messages=("cudnn_status_alloc_failed", "cublas_status_alloc_failed"),
    native_modules={
        "torch": "a PyTorch module",
        "torchvision": "a PyTorch module",
        "timm": "a PyTorch module",
    },
    exporters={"dynamo": ("onnxscript",), "torchscript": ()},
    module_extras={"onnxscript": "export"},
    priority=0,
    frees_activations=True,
)
