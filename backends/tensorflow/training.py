"""TensorFlow training step: the spec's ``tf.Module`` trained with ``GradientTape`` in a
``tf.function``.

The backend's module holds its weights as (non-trainable) ``tf.Variable`` in TensorFlow layout
(HWIO filters, ``(in, out)`` kernels, NHWC activations); the tape watches them explicitly and the
shared :func:`~dlbench.backends.common.training.update_rule` runs on them, the same expressions
as in the PyTorch and JAX training modules. Export transposes back to the canonical layout with
the inverse transforms of :func:`dlbench.backends.tensorflow.ops.weight_layout`. Same function names in every framework's ``training.py``: :func:`cross_entropy`,
:func:`init_optimizer_state`, :func:`apply_update`, :func:`make_trainer`.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlbench.backends.common.training import (  # noqa: E402
    SpecTrainer,
    adam_corrections,
    optimizer_slots,
    update_all,
)
from dlbench.backends.common.weights import nchw_to_nhwc  # noqa: E402
from dlbench.backends.tensorflow.backend import SpecModule  # noqa: E402
from dlbench.backends.tensorflow.ops import weight_layout  # noqa: E402
from dlbench.model.backend import parse_device  # noqa: E402
from dlbench.model.spec import ModelSpec, ResolvedNode  # noqa: E402
from dlbench.train.config import TrainConfig  # noqa: E402


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy on logits, mean over the batch."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def init_optimizer_state(params: list[tf.Variable], config: TrainConfig) -> dict[str, Any]:
    """Zero slot variables: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""
    state: dict[str, Any] = {"t": tf.Variable(0.0, dtype=tf.float32, trainable=False, name="t")}
    for slot in optimizer_slots(config):
        state[slot] = [
            tf.Variable(tf.zeros_like(p), trainable=False, name=f"{slot}_{i}")
            for i, p in enumerate(params)
        ]
    return state


def apply_update(
    params: list[tf.Variable],
    grads: list[tf.Tensor],
    state: dict[str, Any],
    lr: tf.Tensor,
    config: TrainConfig,
) -> None:
    """One optimizer update of the variables
    (:func:`~dlbench.backends.common.training.update_rule`)."""
    state["t"].assign_add(1.0)
    lr = tf.cast(lr, tf.float32)
    corrections = adam_corrections(config, state["t"], _power, tf.sqrt)
    new_params, new_slots = update_all(params, grads, state, lr, config, corrections, tf.sqrt)
    for olds, news in ((params, new_params), *((state[s], v) for s, v in new_slots.items())):
        for var, new in zip(olds, news):
            var.assign(new)


def _power(base: float, t: tf.Tensor) -> tf.Tensor:
    return tf.pow(tf.constant(base, tf.float32), t)


class TensorFlowTrainer(SpecTrainer):
    """A spec's ``tf.Module``, its trained variables and optimizer state on one device."""

    framework = "tensorflow"

    def build(self, device: str) -> None:
        kind, index = parse_device(device)
        self.tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
        with tf.device(self.tf_device):
            self.module = SpecModule(self.spec)
            self.params = self.bind_parameters()
            self.state = init_optimizer_state(self.params, self.config)
        shape = list(self.spec.input_shape)
        self._nhwc = len(shape) == 3
        if self._nhwc:
            c, h, w = shape
            shape = [h, w, c]
        x_sig = tf.TensorSpec([None, *shape], tf.float32)
        self._step = tf.function(
            self._step_impl,
            input_signature=[x_sig, tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.float32)],
        )
        self._forward = tf.function(self.module.__call__, input_signature=[x_sig])

    def locate(self, rn: ResolvedNode, role: str) -> tuple[tf.Variable, Any] | None:
        """The module's variable for ``role`` (TensorFlow layout, see ``weight_layout``)."""
        layout = weight_layout(rn).get(role)
        if layout is None:
            return None
        key, _, to_canonical = layout
        var = self.module.weights[rn.name].get(key)
        return None if var is None else (var, to_canonical)

    def host(self, handle: tf.Variable) -> np.ndarray:
        return handle.numpy()

    def _step_impl(self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.params)
            loss = cross_entropy(self.module(x), y)
        grads = tape.gradient(loss, self.params)
        apply_update(self.params, grads, self.state, lr, self.config)
        return loss

    def _host(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        return np.ascontiguousarray(nchw_to_nhwc(a) if self._nhwc else a)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.device(self.tf_device):
            return (
                tf.identity(tf.convert_to_tensor(self._host(x))),
                tf.identity(tf.convert_to_tensor(np.asarray(y, dtype=np.int64))),
            )

    def train_step(self, batch: tuple[tf.Tensor, tf.Tensor], lr: float) -> float:
        """Forward, loss, ``GradientTape.gradient``, update; returns the loss (a sync point)."""
        with tf.device(self.tf_device):
            loss = self._step(batch[0], batch[1], tf.constant(lr, tf.float32))
        return float(loss.numpy())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch."""
        with tf.device(self.tf_device):
            return self._forward(tf.convert_to_tensor(self._host(x))).numpy()


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TensorFlowTrainer:
    """The TensorFlow trainer of ``spec`` (initial weights: the spec's)."""
    return TensorFlowTrainer(spec, config, device)
