"""JAX training step: the spec run in train mode as a pure function, trained with
``jax.value_and_grad`` inside one ``jax.jit``-compiled step.

The forward pass walks the spec with the backend's op table (:data:`dlbench.backends.jax.ops.OPS`)
except where training differs from inference: ``batch_norm`` (batch statistics, running
statistics returned as new state, PyTorch's momentum and unbiased running variance), ``dropout``
(the shared mask given to the step, or ``jax.random.bernoulli`` with a key folded from the step
number) and ``lstm`` (its two biases stay separate trained parameters, as in ``torch.nn.LSTM``).
Trained leaves are ``{node: {role: array}}`` in canonical layout. The shared
:func:`~dlbench.backends.common.training.update_rule` runs on every leaf, the same expressions
as in the PyTorch and TensorFlow training modules; :class:`JaxTrainer` subclasses
:class:`~dlbench.backends.common.training.SpecTrainer`. Same function names in every
framework's ``training.py``: :func:`cross_entropy`, :func:`init_optimizer_state`,
:func:`apply_update`, :func:`make_trainer`.

Mixed precision (``TrainConfig.precision``) is done as ``jmp`` does it: the parameters stay
float32 outside the step and are cast to the compute dtype (bfloat16 / float16) inside the jitted
step where an op reads them, the inputs at the model's entry, the logits back to float32 for the
loss; batch norm and layer norm compute in float32 (as Flax / Haiku recommend). float16 adds
dynamic loss scaling (``jmp.DynamicLossScale``'s role, with GradScaler's rule:
:func:`~dlbench.backends.common.mixed_precision.update_loss_scale`), a skipped step selected with
``jnp.where`` inside the same jitted step. The dtypes of the step's ``dot_general`` and
``conv_general_dilated`` equations are read from its jaxpr and recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.backends.common.mixed_precision import (
    precision_record,
    update_loss_scale,
    uses_loss_scaling,
)
from dlbench.backends.common.training import (
    SpecTrainer,
    adam_corrections,
    clip_grads,
    optimizer_slots,
    update_all,
)
from dlbench.backends.jax.ops import OPS
from dlbench.errors import BackendError
from dlbench.model.backend import parse_device
from dlbench.model.spec import ModelSpec, ResolvedNode
from dlbench.train.config import TrainConfig
from dlbench.train.trainable import state_roles, trained_roles


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy on logits (optionally label-smoothed), mean over the batch."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    if not label_smoothing:
        return jnp.mean(nll)
    smooth = -jnp.mean(logp, axis=-1)
    return jnp.mean((1.0 - label_smoothing) * nll + label_smoothing * smooth)


def init_optimizer_state(params: Any, config: TrainConfig) -> dict[str, Any]:
    """Zero slots: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""
    state: dict[str, Any] = {"t": jnp.zeros((), jnp.float32)}
    for slot in optimizer_slots(config):
        state[slot] = jax.tree_util.tree_map(jnp.zeros_like, params)
    return state


def apply_update(
    params: Any, grads: Any, state: dict[str, Any], lr: jax.Array, config: TrainConfig
) -> tuple[Any, dict[str, Any]]:
    """One optimizer update: ``(new_params, new_state)``
    (:func:`~dlbench.backends.common.training.update_rule` on every leaf)."""
    t = state["t"] + 1.0
    lr = jnp.asarray(lr, jnp.float32)
    corrections = adam_corrections(config, t, lambda b, t: jnp.power(jnp.float32(b), t), jnp.sqrt)
    leaves, tree = jax.tree_util.tree_flatten(params)
    flat = {s: tree.flatten_up_to(state[s]) for s in optimizer_slots(config)}
    g = clip_grads(
        tree.flatten_up_to(grads), config, lambda g: jnp.sum(g * g), jnp.sqrt, jnp.minimum
    )
    new_p, new_slots = update_all(leaves, g, flat, lr, config, corrections, jnp.sqrt)
    new_state = {"t": t, **{s: tree.unflatten(v) for s, v in new_slots.items()}}
    return tree.unflatten(new_p), new_state


def batch_norm_train(
    x: jax.Array, p: dict[str, jax.Array], s: dict[str, jax.Array], eps: float, momentum: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Train-mode batch norm over axis 1 (as ``torch.nn.BatchNorm*d``): ``(y, new running
    statistics)``; biased batch variance in ``y``, unbiased in the running variance."""
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean.reshape(shape)), axis=axes)
    n = x.size // x.shape[1]
    y = (x - mean.reshape(shape)) * lax.rsqrt(var.reshape(shape) + eps)
    y = y * p["weight"].reshape(shape) + p["bias"].reshape(shape)
    mean, var = lax.stop_gradient(mean), lax.stop_gradient(var)
    new = {
        "mean": (1.0 - momentum) * s["mean"] + momentum * mean,
        "var": (1.0 - momentum) * s["var"] + momentum * var * (n / max(n - 1, 1)),
    }
    return y, new


def batch_norm_eval(x: jax.Array, p: dict[str, jax.Array], s: dict[str, jax.Array], eps: float):
    """Eval-mode batch norm with the running statistics (PyTorch's formula)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - s["mean"].reshape(shape)) * lax.rsqrt(s["var"].reshape(shape) + eps)
    return y * p["weight"].reshape(shape) + p["bias"].reshape(shape)


def _cast(a: Any, dtype: Any) -> Any:
    """``a`` in ``dtype`` when it is a floating array (integer ids stay as they are)."""
    return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a


def make_train_apply(spec: ModelSpec, config: TrainConfig) -> Callable[..., Any]:
    """``run(params, frozen, bn, x, masks, key, train) -> (logits, new_bn)``: the spec in train
    (``train=True``) or eval mode; ``masks`` maps a dropout node to its mask (None: drawn from
    ``key``). Computes in ``config.precision`` (float32 logits out)."""
    plan = spec.resolved()
    OPS.check(plan)
    input_name, output = spec.inputs[0].name, spec.outputs[0]
    momentum = config.bn_momentum
    cdt = jnp.dtype(config.precision)
    mixed = cdt != jnp.float32

    def run(params, frozen, bn, x, masks, key, train: bool):
        env = {input_name: x}
        new_bn = {}
        for i, rn in enumerate(plan):
            xs = [env[n] for n in rn.inputs]
            p = {**frozen.get(rn.name, {}), **params.get(rn.name, {})}
            if mixed:  # jmp's cast_to_compute; the norms in float32
                low = jnp.float32 if rn.op in ("batch_norm", "layer_norm") else cdt
                xs = [_cast(a, low) for a in xs]
                p = {k: _cast(a, low) for k, a in p.items()}
            if rn.op == "batch_norm":
                if train:
                    y, new_bn[rn.name] = batch_norm_train(
                        xs[0], p, bn[rn.name], rn.attrs["eps"], momentum
                    )
                else:
                    y = batch_norm_eval(xs[0], p, bn[rn.name], rn.attrs["eps"])
            elif rn.op == "dropout":
                rate = rn.attrs["rate"]
                if not train or rate == 0:
                    y = xs[0]
                elif masks is not None:
                    y = xs[0] * masks[rn.name].astype(xs[0].dtype)
                else:
                    keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - rate, xs[0].shape)
                    y = jnp.where(keep, xs[0] * (1.0 / (1.0 - rate)), 0.0).astype(xs[0].dtype)
            elif rn.op == "lstm":
                q = {"weight_ih": p["weight_ih"], "weight_hh": p["weight_hh"]}
                q["bias"] = p["bias_ih"] + p["bias_hh"]
                y = OPS["lstm"](xs, q, rn)
            else:
                y = OPS.lookup(rn)(xs, p, rn)
            env[rn.name] = _cast(y, cdt) if mixed else y
        return env[output].astype(jnp.float32), new_bn  # float32 logits into the loss

    return run


class JaxTrainer(SpecTrainer):
    """A spec's train-mode function, its trained params pytree, running statistics and
    optimizer state on one device."""

    framework = "jax"

    def build(self, device: str) -> None:
        kind, index = parse_device(device)
        devs = jax.devices("gpu" if kind == "cuda" else "cpu")
        if index >= len(devs):
            raise BackendError(f"JAX sees {len(devs)} {kind} device(s); asked for {device!r}")
        self.jax_device = devs[index]
        params: dict[str, dict[str, np.ndarray]] = {}
        frozen: dict[str, dict[str, np.ndarray]] = {}
        bn: dict[str, dict[str, np.ndarray]] = {}
        for rn in self.spec.resolved():
            trained, state = trained_roles(rn), state_roles(rn)
            for role, arr in rn.params.items():
                a = np.asarray(arr, np.float32)
                where = params if role in trained else bn if role in state else frozen
                where.setdefault(rn.name, {})[role] = a
        self.params, self.bn = params, bn  # host arrays while the parameters are located
        self.bind_parameters()
        put = lambda t: jax.device_put(t, self.jax_device)  # noqa: E731
        self.params, self.bn = put(params), put(bn)
        frozen = put(frozen)
        self.state = put(init_optimizer_state(self.params, self.config))
        self.key = jax.random.PRNGKey(self.config.seed)
        self.steps = 0
        config = self.config
        run = make_train_apply(self.spec, config)

        self.scaling = uses_loss_scaling(config)
        # the dynamic loss scale's state: scale, finite steps in a row, skipped steps
        self.scale_state = put(
            {
                "scale": jnp.float32(config.loss_scale),
                "good": jnp.zeros((), jnp.int32),
                "skipped": jnp.zeros((), jnp.int32),
            }
        )

        def loss_fn(p, bn, x, y, masks, key, scale):
            logits, new_bn = run(p, frozen, bn, x, masks, key, True)
            loss = cross_entropy(logits, y, config.label_smoothing)
            return loss * scale if self.scaling else loss, (loss, new_bn)

        def step(p, s, bn, ls, x, y, masks, key, lr):
            (_, (loss, new_bn)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                p, bn, x, y, masks, key, ls["scale"]
            )
            if not self.scaling:
                p, s = apply_update(p, grads, s, lr, config)
                return p, s, new_bn, ls, loss
            inv = 1.0 / ls["scale"]
            grads = jax.tree_util.tree_map(lambda g: g * inv, grads)
            finite = jnp.all(
                jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
            )
            new_p, new_s = apply_update(p, grads, s, lr, config)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731 - a skipped step
            p = jax.tree_util.tree_map(keep, new_p, p)
            s = jax.tree_util.tree_map(keep, new_s, s)
            scale, good = update_loss_scale(ls["scale"], ls["good"], finite, config, jnp.where)
            skipped = ls["skipped"] + jnp.where(finite, 0, 1).astype(jnp.int32)
            return p, s, new_bn, {"scale": scale, "good": good, "skipped": skipped}, loss

        self._step_fn = step
        self._step = jax.jit(step)
        self._last_args: tuple[Any, ...] | None = None
        self._observed: dict[str, int] | None = None
        self._forward = jax.jit(lambda p, bn, x: run(p, frozen, bn, x, None, None, False)[0])
        if config.precision != "float32":
            self._probe_precision()

    def _probe_precision(self) -> None:
        """One eval-mode forward pass in the compute dtype: one this device cannot compile or
        run is a clear refusal here, never a float32 run."""
        try:
            self.predict(np.zeros((1, *self.spec.input_shape), np.float32))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise BackendError(
                f"Expected a precision JAX can run on {self.jax_device}. Received: precision="
                f"{self.config.precision!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}"
            ) from exc

    def locate(self, rn: ResolvedNode, role: str) -> tuple[tuple[str, str, str], Any] | None:
        """The ``(tree, node, role)`` leaf (``tree``: ``params`` or ``bn``; canonical layout)."""
        for tree in ("params", "bn"):
            if role in getattr(self, tree).get(rn.name, {}):
                return (tree, rn.name, role), _same
        return None

    def host(self, handle: tuple[str, str, str]) -> np.ndarray:
        tree, node, role = handle
        return np.asarray(jax.device_get(getattr(self, tree)[node][role]))

    def to_device(
        self, x: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray] | None = None
    ) -> tuple[jax.Array, jax.Array, Any]:
        put = lambda a: jax.device_put(a, self.jax_device)  # noqa: E731
        m = None if masks is None else {k: put(np.asarray(v, np.float32)) for k, v in masks.items()}
        return put(np.asarray(x, dtype=np.float32)), put(np.asarray(y, dtype=np.int32)), m

    def train_step(self, batch: tuple[jax.Array, jax.Array, Any], lr: float) -> float:
        """``value_and_grad`` + update in one jitted call; returns the loss (a sync point)."""
        x, y, masks = batch
        if masks is None and self.dropout and self.config.dropout_rng == "shared":
            raise BackendError(
                "Expected the step's shared dropout masks (dropout_rng='shared'). Received none"
            )
        # the framework's own RNG (no shared masks): a key folded from the step number
        key = (
            jax.random.fold_in(self.key, self.steps) if masks is None and self.dropout else self.key
        )
        args = (
            self.params,
            self.state,
            self.bn,
            self.scale_state,
            x,
            y,
            masks,
            key,
            np.float32(lr),
        )
        if self._last_args is None:  # shapes and dtypes only: for the step's jaxpr
            self._last_args = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.asarray(a).dtype), args
            )
        self.params, self.state, self.bn, self.scale_state, loss = self._step(*args)
        self.steps += 1
        return float(loss)

    def observed_compute_dtypes(self) -> dict[str, int] | None:
        """Dtype -> count of the ``dot_general`` / ``conv_general_dilated`` equations (forward
        and backward) in the jaxpr of the step as it was first called (None before a step)."""
        if self._last_args is None:
            return None
        if self._observed is not None:
            return self._observed
        jaxpr = jax.make_jaxpr(self._step_fn)(*self._last_args)
        seen: dict[str, int] = {}

        def walk(jp: Any) -> None:
            for eqn in jp.eqns:
                if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
                    name = str(eqn.invars[0].aval.dtype)
                    seen[name] = seen.get(name, 0) + 1
                for v in eqn.params.values():  # inner jaxprs: pjit, scan (LSTM), cond
                    for inner in v if isinstance(v, (tuple, list)) else (v,):
                        inner = getattr(inner, "jaxpr", inner)
                        if hasattr(inner, "eqns"):
                            walk(inner)

        walk(jaxpr.jaxpr)
        self._observed = seen
        return seen

    def loss_scale(self) -> float | None:
        """The current dynamic loss scale (float16), else None."""
        return float(self.scale_state["scale"]) if self.scaling else None

    @property
    def skipped_steps(self) -> int:
        return int(self.scale_state["skipped"])

    def precision_info(self) -> dict[str, Any]:
        """What this trainer ran (:func:`~dlbench.backends.common.mixed_precision.precision_record`)."""
        p = self.config.precision
        mech = (
            "float32"
            if p == "float32"
            else f"float32 params cast to {p} inside the jitted step (jmp-style policy "
            f"params=float32, compute={p}, output=float32)"
            + (" + dynamic loss scaling" if self.scaling else "")
        )
        return precision_record(
            self.config,
            mech,
            self.observed_compute_dtypes(),
            self.loss_scale(),
            self.skipped_steps if self.scaling else None,
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout, float32) of a host batch, eval mode (running statistics),
        in the training precision."""
        xd = jax.device_put(np.asarray(x, dtype=np.float32), self.jax_device)
        return np.asarray(self._forward(self.params, self.bn, xd))


def _same(a: np.ndarray) -> np.ndarray:
    return a


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> JaxTrainer:
    """The JAX trainer of ``spec`` (initial weights: the spec's)."""
    return JaxTrainer(spec, config, device)
