"""TensorFlow training step: the spec run in train mode by a ``tf.Module``, trained with
``GradientTape`` in a ``tf.function``.

:class:`TrainModule` holds the weights as (non-trainable) ``tf.Variable`` in TensorFlow layout
(HWIO filters, ``(in, out)`` kernels, NHWC activations) and walks the spec with the backend's op
table (:data:`dlbench.backends.tensorflow.ops.OPS`) except where training differs from
inference: ``batch_norm`` (batch statistics; running statistics assigned with PyTorch's momentum
and unbiased variance), ``dropout`` (the shared mask given to the step, or
``tf.nn.experimental.stateless_dropout`` seeded by the step number) and ``lstm`` (its two biases
stay separate variables, as in ``torch.nn.LSTM``). The tape watches the trained variables
explicitly and the shared :func:`~dlbench.backends.common.training.update_rule` runs on them, the
same expressions as in the PyTorch and JAX training modules. Export transposes back to the canonical layout with
the inverse transforms of :func:`dlbench.backends.tensorflow.ops.weight_layout`. Same function names in every framework's ``training.py``: :func:`cross_entropy`,
:func:`init_optimizer_state`, :func:`apply_update`, :func:`make_trainer`.

Mixed precision (``TrainConfig.precision``) follows a Keras ``mixed_bfloat16`` /
``mixed_float16`` policy's semantics (variable dtype float32, compute dtype bfloat16 / float16):
the variables stay float32 and are cast to the compute dtype where an op reads them (as Keras'
``AutoCastVariable``), the inputs are cast at the model's entry and the logits back to float32
(Keras' float32 output layer); batch norm and layer norm compute in float32. float16 adds
``LossScaleOptimizer``'s dynamic loss scaling inside the ``tf.function`` step (the rule of
:func:`~dlbench.backends.common.mixed_precision.update_loss_scale`, GradScaler's, a skipped step
under ``tf.cond``). The dtypes of the traced step's matrix products and convolutions are read
from its graph and recorded.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlbench.backends.common.mixed_precision import (  # noqa: E402
    precision_record,
    update_loss_scale,
    uses_loss_scaling,
)
from dlbench.backends.common.training import (  # noqa: E402
    SpecTrainer,
    adam_corrections,
    clip_grads,
    optimizer_slots,
    update_all,
)
from dlbench.backends.common.weights import NCHW_TO_NHWC, nchw_to_nhwc  # noqa: E402
from dlbench.backends.tensorflow.ops import (  # noqa: E402
    CANON,
    NHWC,
    OPS,
    Value,
    canon,
    nhwc,
    weight_layout,
)
from dlbench.errors import BackendError  # noqa: E402
from dlbench.model.backend import parse_device  # noqa: E402
from dlbench.model.spec import ModelSpec, ResolvedNode  # noqa: E402
from dlbench.train.config import TrainConfig  # noqa: E402


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Softmax cross-entropy on logits (optionally label-smoothed), mean over the batch."""
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if not label_smoothing:
        return tf.reduce_mean(nll)
    smooth = -tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1), axis=-1)
    return tf.reduce_mean((1.0 - label_smoothing) * nll + label_smoothing * smooth)


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
    grads = clip_grads(list(grads), config, lambda g: tf.reduce_sum(g * g), tf.sqrt, tf.minimum)
    corrections = adam_corrections(config, state["t"], _power, tf.sqrt)
    new_params, new_slots = update_all(params, grads, state, lr, config, corrections, tf.sqrt)
    for olds, news in ((params, new_params), *((state[s], v) for s, v in new_slots.items())):
        for var, new in zip(olds, news):
            var.assign(new)


def _power(base: float, t: tf.Tensor) -> tf.Tensor:
    return tf.pow(tf.constant(base, tf.float32), t)


#: roles kept as raw (canonical) variables in training: batch-norm parameters and statistics,
#: the two LSTM biases (inference folds them)
_RAW = {"batch_norm": ("weight", "bias", "mean", "var"), "lstm": ("bias_ih", "bias_hh")}


class TrainModule(tf.Module):
    """The spec's variables and its forward pass in train or eval mode."""

    def __init__(self, spec: ModelSpec, config: TrainConfig) -> None:
        super().__init__(name=None)
        self.plan = spec.resolved()
        OPS.check(self.plan)
        self.config = config
        self.layouts = {rn.name: weight_layout(rn) for rn in self.plan}
        self.weights: dict[str, dict[str, tf.Variable]] = {}
        for rn in self.plan:
            w = {}
            for role, arr in rn.params.items():
                raw = role in _RAW.get(rn.op, ())
                key, fwd = (role, None) if raw else self.layouts[rn.name][role][:2]
                a = np.asarray(arr, np.float64 if fwd else np.float32)
                a = np.ascontiguousarray(fwd(a) if fwd else a, dtype=np.float32)
                w[key] = tf.Variable(a, trainable=False, name=f"{rn.name}.{key}".replace("/", "_"))
            self.weights[rn.name] = w
        self.input_name = spec.inputs[0].name
        self.input_rank = len(spec.input_shape) + 1
        self.output = spec.outputs[0]
        self.seed = tf.constant(config.seed, tf.int64)
        #: the policy's compute dtype (variables stay float32)
        self.compute_dtype = tf.as_dtype(config.precision)

    def _cast(self, v: Value, dtype: tf.DType) -> Value:
        t = v.tensor
        return Value(tf.cast(t, dtype), v.layout) if t.dtype.is_floating else v

    def locate(self, rn: ResolvedNode, role: str) -> tuple[tf.Variable, Any] | None:
        if role in _RAW.get(rn.op, ()):
            return self.weights[rn.name][role], _same
        layout = self.layouts[rn.name].get(role)
        if layout is None:
            return None
        key, _, to_canonical = layout
        var = self.weights[rn.name].get(key)
        return None if var is None else (var, to_canonical)

    def batch_norm(self, v: Value, w: dict[str, tf.Variable], rn: ResolvedNode, train: bool):
        """Batch norm in float32 whatever the compute dtype (output in the compute dtype)."""
        y = self._batch_norm(self._cast(v, tf.float32), w, rn, train)
        return self._cast(y, self.compute_dtype)

    def _batch_norm(self, v: Value, w: dict[str, tf.Variable], rn: ResolvedNode, train: bool):
        rank = v.tensor.shape.rank
        if rank == 4:
            x, layout, axes, shape = nhwc(v), NHWC, [0, 1, 2], [1, 1, 1, -1]
        else:
            x, layout = canon(v), CANON
            axes, shape = ([0, 2], [1, -1, 1]) if rank == 3 else ([0], [1, -1])
        eps, m = rn.attrs["eps"], self.config.bn_momentum
        if train:
            mean = tf.reduce_mean(x, axis=axes)
            var = tf.reduce_mean(tf.square(x - tf.reshape(mean, shape)), axis=axes)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1 if rank == 4 else 1], tf.float32)
            w["mean"].assign((1.0 - m) * w["mean"] + m * tf.stop_gradient(mean))
            unbiased = tf.stop_gradient(var) * (n / tf.maximum(n - 1.0, 1.0))
            w["var"].assign((1.0 - m) * w["var"] + m * unbiased)
        else:
            mean, var = w["mean"], w["var"]
        y = (x - tf.reshape(mean, shape)) * tf.math.rsqrt(tf.reshape(var, shape) + eps)
        return Value(y * tf.reshape(w["weight"], shape) + tf.reshape(w["bias"], shape), layout)

    def __call__(
        self, x: tf.Tensor, masks: dict[str, tf.Tensor] | None, step: Any, train: bool
    ) -> tf.Tensor:
        cdt = self.compute_dtype
        mixed = cdt != tf.float32
        env = {self.input_name: Value(x, NHWC if self.input_rank == 4 else CANON)}
        for i, rn in enumerate(self.plan):
            xs = [env[n] for n in rn.inputs]
            w = self.weights[rn.name]
            if mixed and rn.op != "batch_norm":
                # AutoCastVariable semantics: float32 variables read in the compute dtype
                lowp = tf.float32 if rn.op == "layer_norm" else cdt
                xs = [self._cast(v, lowp) for v in xs]
                w = {k: tf.cast(v, lowp) if v.dtype.is_floating else v for k, v in w.items()}
            if rn.op == "batch_norm":
                y = self.batch_norm(xs[0], w, rn, train)
            elif rn.op == "dropout":
                rate, v = rn.attrs["rate"], xs[0]
                if not train or rate == 0:
                    y = v
                elif masks:
                    mask = tf.cast(masks[rn.name], v.tensor.dtype)
                    if v.layout == NHWC:
                        mask = tf.transpose(mask, NCHW_TO_NHWC)
                    y = Value(v.tensor * mask, v.layout)
                else:
                    seed = tf.stack([self.seed, tf.cast(step, tf.int64) * 1000 + i])
                    t = tf.nn.experimental.stateless_dropout(v.tensor, rate, seed)
                    y = Value(t, v.layout)
            elif rn.op == "lstm":
                q = {"kernel": w["kernel"], "recurrent_kernel": w["recurrent_kernel"]}
                q["bias"] = w["bias_ih"] + w["bias_hh"]
                y = OPS["lstm"](xs, q, rn)
            else:
                y = OPS.lookup(rn)(xs, w, rn)
            if mixed and rn.op == "layer_norm":
                y = self._cast(y, cdt)
            env[rn.name] = y
        return tf.cast(canon(env[self.output]), tf.float32)  # float32 logits into the loss


def _same(a: np.ndarray) -> np.ndarray:
    return a


class TensorFlowTrainer(SpecTrainer):
    """A spec's ``tf.Module``, its trained variables and optimizer state on one device."""

    framework = "tensorflow"

    def build(self, device: str) -> None:
        kind, index = parse_device(device)
        self.tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
        with tf.device(self.tf_device):
            self.module = TrainModule(self.spec, self.config)
            self.params = self.bind_parameters()
            self.state = init_optimizer_state(self.params, self.config)
            self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")
            self.scaling = uses_loss_scaling(self.config)
            # LossScaleOptimizer's dynamic state: the scale, finite steps in a row, skips
            self.scale = tf.Variable(self.config.loss_scale, dtype=tf.float32, trainable=False)
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False)
        shape = list(self.spec.input_shape)
        self._nhwc = len(shape) == 3
        if self._nhwc:
            c, h, w = shape
            shape = [h, w, c]
        x_sig = tf.TensorSpec([None, *shape], tf.float32)
        self._shared = self.config.dropout_rng == "shared" and bool(self.dropout)
        mask_sig = {n: tf.TensorSpec([None, *s], tf.float32) for n, _, s in self.dropout}
        self._step = tf.function(
            self._step_impl,
            input_signature=[
                x_sig,
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([], tf.float32),
                mask_sig if self._shared else {},
            ],
        )
        self._forward = tf.function(
            lambda x: self.module(x, None, None, False), input_signature=[x_sig]
        )
        if self.config.precision != "float32":
            self._probe_precision()

    @property
    def policy_name(self) -> str:
        """The Keras policy whose semantics the step follows (``float32``, ``mixed_bfloat16``,
        ``mixed_float16``)."""
        p = self.config.precision
        return p if p == "float32" else f"mixed_{p}"

    def _probe_precision(self) -> None:
        """Run the forward pass once in the compute dtype: a kernel this device lacks is a
        clear refusal here, never a float32 run."""
        x = np.zeros((1, *self.spec.input_shape), np.float32)
        try:
            self.predict(x)
        except (tf.errors.OpError, TypeError, ValueError) as exc:
            raise BackendError(
                f"Expected a precision TensorFlow can run on {self.tf_device}. Received: "
                f"precision={self.config.precision!r} (policy {self.policy_name}): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from exc

    def observed_compute_dtypes(self) -> dict[str, int]:
        """Dtype -> count of the matrix products / convolutions (forward and backward) in the
        traced training step's graph."""
        graph = self._step.get_concrete_function().graph
        seen: dict[str, int] = {}
        for op in graph.get_operations():
            if op.type.startswith(("MatMul", "BatchMatMul", "Conv2D", "DepthwiseConv2d")):
                name = tf.as_dtype(op.get_attr("T")).name
                seen[name] = seen.get(name, 0) + 1
        return seen

    def loss_scale(self) -> float | None:
        """The current dynamic loss scale (float16), else None."""
        return float(self.scale.numpy()) if self.scaling else None

    @property
    def skipped_steps(self) -> int:
        return int(self.skipped.numpy())

    def precision_info(self) -> dict[str, Any]:
        """What this trainer ran (:func:`~dlbench.backends.common.mixed_precision.precision_record`)."""
        mech = (
            "float32"
            if self.config.precision == "float32"
            else f"{self.policy_name} policy semantics (float32 variables cast to "
            f"{self.config.precision} in the tf.function step)"
            + (" + LossScaleOptimizer-style dynamic loss scaling" if self.scaling else "")
        )
        return precision_record(
            self.config,
            mech,
            self.observed_compute_dtypes(),
            self.loss_scale(),
            self.skipped_steps if self.scaling else None,
        )

    def locate(self, rn: ResolvedNode, role: str) -> tuple[tf.Variable, Any] | None:
        """The module's variable for ``role`` (TensorFlow layout, see ``weight_layout``)."""
        return self.module.locate(rn, role)

    def host(self, handle: tf.Variable) -> np.ndarray:
        return handle.numpy()

    def _step_impl(
        self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor, masks: dict[str, tf.Tensor]
    ) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.params)
            logits = self.module(x, masks, self.steps, True)
            loss = cross_entropy(logits, y, self.config.label_smoothing)
            scaled = loss * self.scale if self.scaling else loss
        grads = tape.gradient(scaled, self.params)
        if not self.scaling:
            apply_update(self.params, grads, self.state, lr, self.config)
        else:
            inv = 1.0 / self.scale
            grads = [g * inv for g in grads]
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

            def update() -> tf.Tensor:
                apply_update(self.params, grads, self.state, lr, self.config)
                return tf.constant(True)

            tf.cond(finite, update, lambda: tf.constant(False))
            scale, good = update_loss_scale(
                self.scale, self.good_steps, finite, self.config, tf.where
            )
            self.scale.assign(scale)
            self.good_steps.assign(good)
            self.skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
        self.steps.assign_add(1)
        return loss

    def _host(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        return np.ascontiguousarray(nchw_to_nhwc(a) if self._nhwc else a)

    def to_device(
        self, x: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray] | None = None
    ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        def put(a: np.ndarray) -> tf.Tensor:
            return tf.identity(tf.convert_to_tensor(a))

        with tf.device(self.tf_device):
            m = (
                {}
                if masks is None
                else {k: put(np.asarray(v, np.float32)) for k, v in masks.items()}
            )
            return put(self._host(x)), put(np.asarray(y, dtype=np.int64)), m

    def train_step(self, batch: tuple[tf.Tensor, tf.Tensor, Any], lr: float) -> float:
        """Forward, loss, ``GradientTape.gradient``, update; returns the loss (a sync point)."""
        x, y, masks = batch
        if self._shared and not masks:
            raise BackendError(
                "Expected the step's shared dropout masks (dropout_rng='shared'). Received none"
            )
        with tf.device(self.tf_device):
            loss = self._step(x, y, tf.constant(lr, tf.float32), masks if self._shared else {})
        return float(loss.numpy())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch."""
        with tf.device(self.tf_device):
            return self._forward(tf.convert_to_tensor(self._host(x))).numpy()  # float32


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TensorFlowTrainer:
    """The TensorFlow trainer of ``spec`` (initial weights: the spec's)."""
    return TensorFlowTrainer(spec, config, device)
