"""``TorchBackend.wrap``: a user's ``nn.Module`` as a dlbench Model.

Example:
    >>> import torch, dlbench
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    >>> m = dlbench.get_backend("torch").wrap(net, input_shape=(1, 8, 8))
    >>> m.predict(np.zeros((4, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (4, 10)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dlbench.backends.common.wrapping import (
    check_batch,
    check_input_shape,
    check_wrap_kwargs,
    first_tensor,
    probe,
)
from dlbench.backends.torch.backend import TorchModel
from dlbench.detection.wrapped import attach_detection, detector_settings, outputs_to_numpy
from dlbench.errors import BackendError
from dlbench.model.backend import parse_device


class WrappedTorchModel(TorchModel):
    """A user's module: checks the input shape (when known) and that the output is a tensor."""

    def __init__(
        self, backend: Any, module: nn.Module, device: str, name: str, input_shape: Any
    ) -> None:
        super().__init__(backend, module, device, name)
        self.input_shape = input_shape

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        check_batch(self, batch)
        return super().to_device(batch)

    def to_numpy(self, y: Any) -> np.ndarray:
        y = first_tensor(y, lambda v: isinstance(v, torch.Tensor), "torch.Tensor", self.name)
        return y.detach().to("cpu").numpy()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "wrapped": True, "input_shape": self.input_shape}


class WrappedTorchDetector(WrappedTorchModel):
    """A user's detector: every output comes back to the host (a dict / list of arrays as the
    module returns them) for its post-processing (:mod:`dlbench.detection.wrapped`)."""

    def to_numpy(self, y: Any) -> Any:
        return outputs_to_numpy(
            y,
            lambda v: isinstance(v, torch.Tensor),
            lambda v: v.detach().to("cpu").numpy(),
            self.name,
        )

    def settings(self) -> dict[str, Any]:
        return detector_settings(self, super().settings())


def wrap_module(
    backend: Any,
    native: Any,
    device: str = "cpu",
    name: str | None = None,
    input_shape: Any = None,
    detection: Any = None,
    **kwargs: Any,
) -> WrappedTorchModel:
    """Wrap ``native`` (an ``nn.Module``, put in eval mode) for ``device``.

    Args:
        input_shape: Per-sample input shape, NCHW for images, e.g. ``(3, 32, 32)``. When given,
            one probe batch runs now (a wrong shape or a non-tensor output fails here) and every
            batch is checked against it; needed to export the model to ONNX.
        detection: A detector's outputs: a :class:`dlbench.detection.DetectorOutputs` or a
            :class:`dlbench.detection.Decoder` (see :mod:`dlbench.detection.wrapped`);
            ``input_shape`` is then required, and one probe batch runs through the model and
            the post-processing now. The accuracy scenario then gives the 12 COCO stats.
    """
    check_wrap_kwargs("torch", kwargs, "device, name, input_shape, detection")
    if not isinstance(native, nn.Module):
        raise BackendError(f"Expected a torch.nn.Module. Received: {type(native).__name__}")
    backend.check_device(device)
    kind, index = parse_device(device)
    dev = f"cuda:{index}" if kind == "cuda" else "cpu"
    cls = WrappedTorchModel if detection is None else WrappedTorchDetector
    model = cls(
        backend, native.eval(), dev, name or type(native).__name__, check_input_shape(input_shape)
    )
    if detection is not None:
        return attach_detection(model, detection)
    if model.input_shape is not None:
        probe(model)
    return model
