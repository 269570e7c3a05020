"""TensorFlow at reduced precision: the spec's ``tf.Module`` with its weights cast.

``bfloat16`` / ``float16``: every weight variable is cast once at build; the traced function
casts its float32 input to the 16-bit type and its output back to float32, so every op of the
graph computes in the 16-bit type (a cast, not Keras's mixed policy: the spec is a ``tf.Module``,
not a Keras model, and the Keras policy would keep variables float32 and cast per call). On a CPU
without native bfloat16 arithmetic the oneDNN kernels emulate it. ``int8`` is LiteRT's job
(the ``litert`` backend converts this same module): skipped here with that reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from dlbench.backends.tensorflow.backend import SpecModule, TensorFlowBackend, TensorFlowModel
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.backend import parse_device
from dlbench.model.spec import ModelSpec

DTYPES = {"bfloat16": tf.bfloat16, "float16": tf.float16}


class CastSpecModule(SpecModule):
    """The spec's module with 16-bit weights; float32 in, float32 out."""

    def __init__(self, spec: ModelSpec, dtype: Any) -> None:
        super().__init__(spec)
        self.dtype = dtype
        self.weights = {
            node: {
                k: tf.Variable(tf.cast(v, dtype), trainable=False, name=v.name.split(":")[0])
                for k, v in params.items()
            }
            for node, params in self.weights.items()
        }

    def weights_flat(self) -> list[Any]:
        return [v for params in self.weights.values() for v in params.values()]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(super().__call__(tf.cast(x, self.dtype)), tf.float32)


class CastTensorFlowModel(TensorFlowModel):
    def __init__(self, backend: TensorFlowBackend, module: CastSpecModule, device: str, tf_device):
        super().__init__(backend, module, device, tf_device)
        self._weight_bytes = sum(
            int(np.prod(v.shape)) * v.dtype.size for v in module.weights_flat()
        )

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "precision_in_force": self.module.dtype.name,
            "how": f"cast: weights and activations {self.module.dtype.name}, float32 I/O",
        }


def build_precision(
    backend: TensorFlowBackend,
    spec: ModelSpec,
    device: str,
    precision: str,
    calibration: np.ndarray | None = None,
) -> TensorFlowModel:
    """``spec`` in TensorFlow at ``precision`` (see the module docstring).

    Raises:
        UnsupportedPrecision: int8 (TensorFlow has no int8 inference path of its own).
    """
    backend.check_device(device)
    if precision not in DTYPES:
        raise UnsupportedPrecision(
            backend.name,
            precision,
            device,
            "TensorFlow has no int8 inference of its own; the litert backend runs this model "
            "quantized by the TFLite converter",
        )
    kind, index = parse_device(device)
    tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
    with tf.device(tf_device):
        module = CastSpecModule(spec.validate(), DTYPES[precision])
    return CastTensorFlowModel(backend, module, device, tf_device)
