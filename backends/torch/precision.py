"""PyTorch at reduced precision: the float32 module of the spec, run as PyTorch users do.

- ``bfloat16`` / ``float16``: ``torch.autocast`` (automatic mixed precision, on CPU and CUDA):
  weights stay float32, convolutions, linear layers and matmuls run in the 16-bit type, norms
  and softmax stay float32; outputs are cast back to float32 on the host.
- ``int8``: FX graph mode post-training quantization, ``torch.ao.quantization.quantize_fx``
  (``prepare_fx`` with the ``x86`` qconfig mapping, calibration, ``convert_fx``), engine
  ``x86`` (fbgemm + oneDNN), CPU only. The PT2E flow (``prepare_pt2e`` / ``convert_pt2e`` with
  the X86 inductor quantizer) moved out of torch into torchao, which is not a dependency here;
  FX graph mode is what works on this torch (it warns that ``torch.ao.quantization`` is
  deprecated: the warning is recorded in the settings, not printed). Option ``quantization``:
  ``static`` (default: int8 weights per channel, uint8 activations calibrated on the run's
  calibration batch) or ``dynamic`` (``quantize_dynamic``: int8 Linear/LSTM weights only,
  activations quantized at run time; convolutions stay float32).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from dlbench.backends.torch.backend import TorchBackend, TorchModel, build_module
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.spec import ModelSpec

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
#: Calibration samples per forward pass of the observed module.
CALIBRATION_BATCH = 32


class AutocastTorchModel(TorchModel):
    """The float32 module run under ``torch.autocast`` at a 16-bit dtype."""

    def __init__(self, backend: TorchBackend, module: Any, device: str, name: str, dtype: Any):
        super().__init__(backend, module, device, name)
        self.dtype = dtype
        self.device_type = self.torch_device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._ctx(), torch.autocast(self.device_type, dtype=self.dtype):
            return self.runner(x)

    def to_numpy(self, y: Any) -> np.ndarray:
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.detach().to("cpu", torch.float32).numpy()

    def settings(self) -> dict[str, Any]:
        name = str(self.dtype).removeprefix("torch.")
        return {
            **super().settings(),
            "precision_in_force": name,
            "how": f"torch.autocast({self.device_type!r}, dtype=torch.{name}); weights float32",
        }


class QuantizedTorchModel(TorchModel):
    """A quantized module (CPU); its weight bytes are those of its state dict (packed int8)."""

    def __init__(
        self, backend: TorchBackend, module: Any, device: str, name: str, info: dict[str, Any]
    ):
        super().__init__(backend, module, device, name)
        self.runner = self.module  # quantized modules run eagerly (never torch.compile'd here)
        self.info = info
        self._weight_bytes = sum(
            v.numel() * v.element_size()
            for v in module.state_dict().values()
            if isinstance(v, torch.Tensor)
        )

    def settings(self) -> dict[str, Any]:
        out = {**super().settings(), "precision_in_force": "int8", **self.info}
        if self.backend.options["mode"] == "compile":
            out["mode_in_force"] = "eager (quantized modules are not compiled)"
        return out


def _calibrated(module: Any, calibration: np.ndarray) -> Any:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    example = (torch.from_numpy(np.array(calibration[:1], np.float32, order="C")),)
    prepared = prepare_fx(module, get_default_qconfig_mapping("x86"), example_inputs=example)
    with torch.inference_mode():
        for i in range(0, len(calibration), CALIBRATION_BATCH):
            # a fresh C-order copy: a size-1 channel axis may carry any stride, and a stride
            # that looks channels-last sends the convolutions down another oneDNN path whose
            # sums differ in the last bit; the observers must see the same values for the
            # same data however the caller's array is laid out (calibration determinism)
            chunk = np.array(calibration[i : i + CALIBRATION_BATCH], np.float32, order="C")
            prepared(torch.from_numpy(chunk))
    return convert_fx(prepared)


def quantize(
    spec: ModelSpec, method: str, calibration: np.ndarray | None
) -> tuple[Any, dict[str, Any]]:
    """``(int8 module, settings)``: the spec's module quantized by ``method``."""
    torch.backends.quantized.engine = "x86"
    module = build_module(spec.validate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "dynamic":
            quantized = torch.ao.quantization.quantize_dynamic(module, dtype=torch.qint8)
            info = {
                "method": "dynamic",
                "api": "torch.ao.quantization.quantize_dynamic (Linear/LSTM weights int8)",
            }
        else:
            if calibration is None or len(calibration) == 0:
                raise ValueError(
                    "Expected calibration data for static quantization. Received: none"
                )
            quantized = _calibrated(module, calibration)
            info = {
                "method": "static",
                "api": "torch.ao.quantization.quantize_fx prepare_fx/convert_fx, qconfig x86",
                "weight_type": "int8 per channel",
                "activation_type": "uint8",
                "calibration_samples": int(len(calibration)),
            }
    info["engine"] = torch.backends.quantized.engine
    info["framework_warnings"] = sorted({str(w.message).split("\n")[0][:160] for w in caught})
    return quantized.eval(), info


def build_precision(
    backend: TorchBackend,
    spec: ModelSpec,
    device: str,
    precision: str,
    calibration: np.ndarray | None = None,
) -> TorchModel:
    """``spec`` in PyTorch at ``precision`` (see the module docstring).

    Raises:
        UnsupportedPrecision: int8 on a GPU (the quantized kernels are CPU only).
    """
    backend.check_device(device)
    if precision in DTYPES:
        module = build_module(spec.validate())
        return AutocastTorchModel(backend, module, device, spec.name, DTYPES[precision])
    if precision == "int8":
        if not device.startswith("cpu"):
            raise UnsupportedPrecision(
                backend.name, precision, device, "torch's quantized int8 kernels are CPU only"
            )
        module, info = quantize(spec, backend.options["quantization"], calibration)
        return QuantizedTorchModel(backend, module, device, spec.name, info)
    raise UnsupportedPrecision(backend.name, precision, device, "not a reduced precision")
