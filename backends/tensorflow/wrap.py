"""``TensorFlowBackend.wrap``: a user's ``keras.Model``, ``tf.Module`` or TF function as a Model.

dlbench data is NCHW; Keras and TensorFlow models usually take NHWC images. ``layout`` says
which one the model takes (inferred from a Keras model's declared input when possible); NHWC
models get their batches transposed in ``to_device``, like the spec-built TensorFlow models.
The backend's ``mode`` applies: ``eager`` calls the model as is, ``graph`` and ``xla`` wrap it
in ``tf.function`` (``jit_compile=True`` for xla). Keras models are called with
``training=False``.

Example:
    >>> import keras, dlbench
    >>> net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> m = dlbench.get_backend("tensorflow").wrap(net)   # input_shape (1, 8, 8), layout NHWC
    >>> m.predict(np.zeros((4, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (4, 10)
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import tensorflow as tf

from dlbench.backends.common.wrapping import (
    check_input_shape,
    check_layout,
    check_wrap_kwargs,
    first_tensor,
    host_batch,
    nhwc,
    probe,
)
from dlbench.detection.wrapped import attach_detection, detector_settings, outputs_to_numpy
from dlbench.errors import BackendError
from dlbench.model.backend import Model, parse_device


def _is_keras(native: Any) -> bool:
    with contextlib.suppress(Exception):
        import keras

        if isinstance(native, keras.layers.Layer):
            return True
    return isinstance(native, tf.keras.layers.Layer) if hasattr(tf, "keras") else False


def _declared_shape(native: Any) -> tuple[int | None, ...] | None:
    """Per-sample input shape a Keras model declares (None dims unknown), if it declares one."""
    with contextlib.suppress(Exception):
        inputs = native.inputs
        if inputs and len(inputs) == 1:
            return tuple(None if d is None else int(d) for d in tuple(inputs[0].shape)[1:])
    return None


def _fits(declared: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    return len(declared) == len(shape) and all(d is None or d == s for d, s in zip(declared, shape))


def resolve_layout(
    native: Any, input_shape: tuple[int, ...] | None, layout: str | None
) -> tuple[tuple[int, ...] | None, str]:
    """``(input_shape, layout)`` for ``native``, checked against what a Keras model declares."""
    declared = _declared_shape(native) if _is_keras(native) else None
    if layout is not None:
        layout = check_layout(layout)
    if declared is not None and input_shape is None and all(d is not None for d in declared):
        if layout is None:
            layout = "NHWC"
            with contextlib.suppress(Exception):
                import keras

                if keras.config.image_data_format() == "channels_first":
                    layout = "NCHW"
        dims = tuple(int(d) for d in declared)  # type: ignore[arg-type]
        input_shape = (dims[2], dims[0], dims[1]) if layout == "NHWC" and len(dims) == 3 else dims
    if declared is not None and input_shape is not None:
        as_nhwc, as_nchw = _fits(declared, nhwc(input_shape)), _fits(declared, input_shape)
        if layout is None:
            layout = "NHWC" if as_nhwc else "NCHW" if as_nchw else None
        native_shape = nhwc(input_shape) if layout == "NHWC" else input_shape
        if layout is None or not _fits(declared, native_shape):
            raise BackendError(
                f"The Keras model takes inputs of per-sample shape {declared}; input_shape="
                f"{input_shape} (dlbench's NCHW data) is {nhwc(input_shape)} in NHWC"
                f"{'' if layout is None else f' and the layout asked for is {layout}'}. "
                "Pass the input_shape of the data the model is meant for."
            )
    return input_shape, layout or "NHWC"


class WrappedTensorFlowModel(Model):
    """A user's TensorFlow model on one device."""

    def __init__(
        self,
        backend: Any,
        native: Any,
        device: str,
        tf_device: str,
        name: str,
        input_shape: tuple[int, ...] | None,
        layout: str,
    ) -> None:
        super().__init__(backend, device, name)
        self.native = native
        self.tf_device = tf_device
        self.input_shape = input_shape
        self.layout = layout
        keras_model = _is_keras(native)

        def native_call(x: tf.Tensor) -> Any:
            return native(x, training=False) if keras_model else native(x)

        self.native_call = native_call
        mode = backend.options["mode"]
        if mode == "eager":
            self.fn = native_call
        else:
            signature = None
            if input_shape is not None:
                shape = nhwc(input_shape) if layout == "NHWC" else input_shape
                signature = [tf.TensorSpec([None, *shape], tf.float32)]
            self.fn = tf.function(
                native_call,
                input_signature=signature,
                jit_compile=mode == "xla",
                reduce_retracing=True,
            )
        weights = getattr(native, "weights", None)
        if weights is None:
            weights = getattr(native, "variables", ())
        self._weight_bytes = sum(
            int(np.prod(v.shape)) * np.dtype(str(v.dtype)).itemsize for v in weights
        )

    def to_device(self, batch: np.ndarray) -> tf.Tensor:
        a = host_batch(self, batch)
        with tf.device(self.tf_device):
            return tf.identity(tf.convert_to_tensor(a))

    def forward(self, x: tf.Tensor) -> Any:
        with tf.device(self.tf_device):
            return self.fn(x)

    def sync(self, y: Any) -> None:
        if "GPU" in self.tf_device:
            sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
            if sync is not None:
                sync()

    def to_numpy(self, y: Any) -> np.ndarray:
        y = first_tensor(
            y, lambda v: isinstance(v, (tf.Tensor, np.ndarray)), "tf.Tensor", self.name
        )
        return np.asarray(y)

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "wrapped": True,
            "input_shape": self.input_shape,
            "layout": self.layout,
        }


class WrappedTensorFlowDetector(WrappedTensorFlowModel):
    """A user's detector: every output comes back to the host (a dict / list of arrays as the
    model returns them) for its post-processing (:mod:`dlbench.detection.wrapped`)."""

    def to_numpy(self, y: Any) -> Any:
        return outputs_to_numpy(
            y, lambda v: isinstance(v, tf.Tensor) or hasattr(v, "numpy"), np.asarray, self.name
        )

    def settings(self) -> dict[str, Any]:
        return detector_settings(self, super().settings())


def wrap_model(
    backend: Any,
    native: Any,
    device: str = "cpu",
    name: str | None = None,
    input_shape: Any = None,
    layout: str | None = None,
    detection: Any = None,
    **kwargs: Any,
) -> WrappedTensorFlowModel:
    """Wrap a ``keras.Model``, a ``tf.Module`` with ``__call__``, or a function of one tensor.

    Args:
        input_shape: Per-sample shape of dlbench's NCHW data, e.g. ``(3, 32, 32)``; inferred
            from a Keras model's declared input when omitted. When known, one probe batch runs
            now and every batch is checked; needed to export to ONNX.
        layout: ``NHWC`` (default for TensorFlow) or ``NCHW``: what the model takes.
        detection: A detector's outputs: a :class:`dlbench.detection.DetectorOutputs` or a
            :class:`dlbench.detection.Decoder` (see :mod:`dlbench.detection.wrapped`); the
            input shape is then required, and one probe batch runs through the model and the
            post-processing now. The accuracy scenario then gives the 12 COCO stats.
    """
    check_wrap_kwargs("tensorflow", kwargs, "device, name, input_shape, layout, detection")
    if not callable(native):
        raise BackendError(
            "Expected a keras.Model, a tf.Module with __call__, or a function of one tensor. "
            f"Received: {type(native).__name__}"
        )
    backend.check_device(device)
    kind, index = parse_device(device)
    tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
    shape, layout = resolve_layout(native, check_input_shape(input_shape), layout)
    cls = WrappedTensorFlowModel if detection is None else WrappedTensorFlowDetector
    model = cls(
        backend,
        native,
        device,
        tf_device,
        name or getattr(native, "name", None) or type(native).__name__,
        shape,
        layout,
    )
    if detection is not None:
        return attach_detection(model, detection)
    if model.input_shape is not None:
        probe(model)
    return model
