"""``JaxBackend.wrap``: a user's ``fn(params, x)`` and its params as a dlbench Model.

Example:
    >>> import jax.numpy as jnp, dlbench
    >>> def fn(p, x): return x.reshape(x.shape[0], -1) @ p["w"]
    >>> m = dlbench.get_backend("jax").wrap(fn, {"w": jnp.ones((64, 10))}, input_shape=(1, 8, 8))
    >>> m.predict(np.zeros((4, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (4, 10)
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dlbench.backends.common import wrapping
from dlbench.backends.jax.backend import JaxModel
from dlbench.detection.wrapped import attach_detection, detector_settings, outputs_to_numpy
from dlbench.errors import BackendError


class WrappedJaxModel(JaxModel):
    """A user's function: NHWC functions get NCHW batches transposed in ``to_device``."""

    def __init__(
        self,
        backend: Any,
        fn: Any,
        params: Any,
        device: str,
        jax_device: Any,
        name: str,
        input_shape: Any,
        layout: str,
    ) -> None:
        super().__init__(backend, fn, params, device, jax_device, name)
        self.fn = fn
        self.input_shape = input_shape
        self.layout = layout

    def to_device(self, batch: np.ndarray) -> jax.Array:
        return jax.device_put(wrapping.host_batch(self, batch), self.jax_device)

    def sync(self, y: Any) -> None:
        jax.block_until_ready(y)

    def to_numpy(self, y: Any) -> np.ndarray:
        y = wrapping.first_tensor(
            y, lambda v: isinstance(v, (jax.Array, np.ndarray)), "JAX array", self.name
        )
        return np.asarray(jax.device_get(y))

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "wrapped": True,
            "input_shape": self.input_shape,
            "layout": self.layout,
        }


class WrappedJaxDetector(WrappedJaxModel):
    """A user's detector: every output comes back to the host (a dict / list of arrays as the
    function returns them) for its post-processing (:mod:`dlbench.detection.wrapped`)."""

    def to_numpy(self, y: Any) -> Any:
        return outputs_to_numpy(
            y,
            lambda v: isinstance(v, jax.Array),
            lambda v: np.asarray(jax.device_get(v)),
            self.name,
        )

    def settings(self) -> dict[str, Any]:
        return detector_settings(self, super().settings())


def wrap_function(
    backend: Any,
    native: Any,
    params: Any = None,
    device: str = "cpu",
    name: str | None = None,
    input_shape: Any = None,
    layout: str = "NCHW",
    detection: Any = None,
    **kwargs: Any,
) -> WrappedJaxModel:
    """Wrap ``native(params, x)``; ``params`` is any pytree (it is put on the device once).

    Args:
        input_shape: Per-sample shape of dlbench's NCHW data, e.g. ``(3, 32, 32)``. When given,
            one probe batch runs now and every batch is checked; needed to export to ONNX.
        layout: ``NCHW`` (the function takes NCHW images) or ``NHWC`` (batches are transposed
            for it, outside the timed computation when timing ``compute``).
        detection: A detector's outputs: a :class:`dlbench.detection.DetectorOutputs` or a
            :class:`dlbench.detection.Decoder` (see :mod:`dlbench.detection.wrapped`);
            ``input_shape`` is then required, and one probe batch runs through the function and
            the post-processing now. The accuracy scenario then gives the 12 COCO stats.
    """
    wrapping.check_wrap_kwargs(
        "jax", kwargs, "params, device, name, input_shape, layout, detection"
    )
    if not callable(native):
        raise BackendError(f"Expected a function fn(params, x). Received: {type(native).__name__}")
    backend.check_device(device)
    cls = WrappedJaxModel if detection is None else WrappedJaxDetector
    model = cls(
        backend,
        native,
        params,
        device,
        backend._device(device),
        name or getattr(native, "__name__", "fn"),
        wrapping.check_input_shape(input_shape),
        wrapping.check_layout(layout),
    )
    if detection is not None:
        return attach_detection(model, detection)
    if model.input_shape is not None:
        wrapping.probe(model)
    return model
