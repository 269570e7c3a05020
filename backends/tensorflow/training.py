"""TensorFlow training step: the spec's ``tf.Module`` trained with ``GradientTape`` in a
``tf.function``.

The backend's module holds its weights as (non-trainable) ``tf.Variable`` in TensorFlow layout
(HWIO filters, ``(in, out)`` kernels, NHWC activations); the tape watches them explicitly and the
update rules of :mod:`dlbench.train.config` are written here in TensorFlow ops, the same
expressions as in the PyTorch and JAX training modules. Export transposes back to the canonical
layout. Same function names in every framework's ``training.py``: :func:`cross_entropy`,
:func:`init_optimizer_state`, :func:`apply_update`, :func:`make_trainer`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlbench.backends.tensorflow.backend import SpecModule  # noqa: E402
from dlbench.errors import BackendError  # noqa: E402
from dlbench.model.backend import parse_device  # noqa: E402
from dlbench.model.spec import ModelSpec  # noqa: E402
from dlbench.train.config import TrainConfig  # noqa: E402
from dlbench.train.trainable import TRAINED_OPS, logits_spec, trained_param_names  # noqa: E402


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy on logits, mean over the batch."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def init_optimizer_state(params: list[tf.Variable], config: TrainConfig) -> dict[str, Any]:
    """Zero slot variables: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""

    def zeros(tag: str) -> list[tf.Variable]:
        return [
            tf.Variable(tf.zeros_like(p), trainable=False, name=f"{tag}_{i}")
            for i, p in enumerate(params)
        ]

    state: dict[str, Any] = {"t": tf.Variable(0.0, dtype=tf.float32, trainable=False, name="t")}
    if config.optimizer == "sgd":
        state["buf"] = zeros("buf")
    else:
        state["m"], state["v"] = zeros("m"), zeros("v")
    return state


def apply_update(
    params: list[tf.Variable],
    grads: list[tf.Tensor],
    state: dict[str, Any],
    lr: tf.Tensor,
    config: TrainConfig,
) -> None:
    """One optimizer update of the variables (rules in :mod:`dlbench.train.config`)."""
    state["t"].assign_add(1.0)
    wd = config.weight_decay
    lr = tf.cast(lr, tf.float32)
    if config.optimizer == "sgd":
        mu = config.momentum
        for p, g, buf in zip(params, grads, state["buf"]):
            if wd:
                g = g + wd * p
            buf.assign(mu * buf + g)
            d = g + mu * buf if config.nesterov else buf
            p.assign_sub(lr * d)
        return
    b1, b2 = config.betas
    t = state["t"]
    bc1 = 1.0 - tf.pow(tf.constant(b1, tf.float32), t)
    bc2_sqrt = tf.sqrt(1.0 - tf.pow(tf.constant(b2, tf.float32), t))
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        if wd:
            g = g + wd * p
        m.assign(b1 * m + (1.0 - b1) * g)
        v.assign(b2 * v + (1.0 - b2) * (g * g))
        denom = tf.sqrt(v) / bc2_sqrt + config.eps
        p.assign_sub((lr / bc1) * m / denom)


def _layout(rn: Any) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """Spec role -> (TF weight key, TF array -> canonical array) for one trained node."""
    ident = lambda a: a  # noqa: E731
    if rn.op == "conv2d":
        o, cg, kh, kw = rn.params["weight"].shape
        g = rn.attrs["groups"]
        if g > 1 and cg == 1:  # depthwise: (kh, kw, C, multiplier) -> OIHW

            def conv(a: np.ndarray) -> np.ndarray:
                return a.transpose(2, 3, 0, 1).reshape(o, 1, kh, kw)

        else:  # HWIO -> OIHW

            def conv(a: np.ndarray) -> np.ndarray:
                return a.transpose(3, 2, 0, 1)

        return {"weight": ("filter", conv), "bias": ("bias", ident)}
    if rn.op == "dense":
        return {"weight": ("kernel", lambda a: a.T), "bias": ("bias", ident)}
    return {"weight": ("weight", ident), "bias": ("bias", ident)}  # layer_norm


class TensorFlowTrainer:
    """A spec's ``tf.Module``, its trained variables and optimizer state on one device."""

    framework = "tensorflow"

    def __init__(self, spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> None:
        self.spec = logits_spec(spec)
        self.config = config
        kind, index = parse_device(device)
        self.tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
        with tf.device(self.tf_device):
            self.module = SpecModule(self.spec)
            self.names = trained_param_names(self.spec)
            self._export: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
            by_name: dict[str, tf.Variable] = {}
            for rn in self.spec.resolved():
                if rn.op not in TRAINED_OPS:
                    continue
                layout = _layout(rn)
                for role, pname in rn.param_names.items():
                    key, back = layout[role]
                    var = self.module.weights[rn.name].get(key)
                    if var is None or not np.array_equal(
                        back(var.numpy()), rn.params[role].astype(np.float32)
                    ):
                        raise BackendError(
                            f"Node {rn.name!r}: cannot find parameter {role!r} ({pname}) in the "
                            "TensorFlow module built from the spec"
                        )
                    by_name[pname] = var
                    self._export[pname] = back
            self.params = [by_name[n] for n in self.names]
            self.state = init_optimizer_state(self.params, config)
        rank = len(self.spec.input_shape) + 1
        shape = list(self.spec.input_shape)
        if rank == 4:
            c, h, w = shape
            shape = [h, w, c]
        x_sig = tf.TensorSpec([None, *shape], tf.float32)
        self._nhwc = rank == 4
        self._step = tf.function(
            self._step_impl,
            input_signature=[x_sig, tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.float32)],
        )
        self._forward = tf.function(self.module.__call__, input_signature=[x_sig])

    def _step_impl(self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.params)
            loss = cross_entropy(self.module(x), y)
        grads = tape.gradient(loss, self.params)
        apply_update(self.params, grads, self.state, lr, self.config)
        return loss

    def _host(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1) if self._nhwc else a)

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

    def export_params(self) -> dict[str, np.ndarray]:
        """Trained parameters by spec name, canonical layout (OIHW, ``(out, in)``)."""
        return {
            n: np.ascontiguousarray(self._export[n](p.numpy()), dtype=np.float32)
            for n, p in zip(self.names, self.params)
        }


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TensorFlowTrainer:
    """The TensorFlow trainer of ``spec`` (initial weights: the spec's)."""
    return TensorFlowTrainer(spec, config, device)
