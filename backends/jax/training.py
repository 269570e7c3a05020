"""JAX training step: the spec's pure ``apply(params, x)`` trained with ``jax.value_and_grad``
inside one ``jax.jit``-compiled step.

The params pytree is the backend's own (``{node: {role: array}}``, canonical layout); only the
trained ops' leaves are differentiated. The update rules of :mod:`dlbench.train.config` are
written here in ``jax.numpy``, the same expressions as in the PyTorch and TensorFlow training
modules. Same function names in every framework's ``training.py``: :func:`cross_entropy`,
:func:`init_optimizer_state`, :func:`apply_update`, :func:`make_trainer`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlbench.backends.jax.backend import make_apply
from dlbench.errors import BackendError
from dlbench.model.backend import parse_device
from dlbench.model.spec import ModelSpec
from dlbench.train.config import TrainConfig
from dlbench.train.trainable import TRAINED_OPS, logits_spec, trained_param_names


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy on logits, mean over the batch."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def init_optimizer_state(params: Any, config: TrainConfig) -> dict[str, Any]:
    """Zero slots: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
    state: dict[str, Any] = {"t": jnp.zeros((), jnp.float32)}
    if config.optimizer == "sgd":
        state["buf"] = zeros()
    else:
        state["m"], state["v"] = zeros(), zeros()
    return state


def apply_update(
    params: Any, grads: Any, state: dict[str, Any], lr: jax.Array, config: TrainConfig
) -> tuple[Any, dict[str, Any]]:
    """One optimizer update: ``(new_params, new_state)`` (rules in :mod:`dlbench.train.config`)."""
    tm = jax.tree_util.tree_map
    wd = config.weight_decay
    t = state["t"] + 1.0
    lr = jnp.asarray(lr, jnp.float32)
    if wd:
        grads = tm(lambda g, p: g + wd * p, grads, params)
    if config.optimizer == "sgd":
        mu = config.momentum
        buf = tm(lambda b, g: mu * b + g, state["buf"], grads)
        d = tm(lambda g, b: g + mu * b, grads, buf) if config.nesterov else buf
        return tm(lambda p, d: p - lr * d, params, d), {"t": t, "buf": buf}
    b1, b2 = config.betas
    bc1 = 1.0 - jnp.power(jnp.float32(b1), t)
    bc2_sqrt = jnp.sqrt(1.0 - jnp.power(jnp.float32(b2), t))
    m = tm(lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads)
    v = tm(lambda v, g: b2 * v + (1.0 - b2) * (g * g), state["v"], grads)
    new = tm(
        lambda p, m, v: p - (lr / bc1) * m / (jnp.sqrt(v) / bc2_sqrt + config.eps), params, m, v
    )
    return new, {"t": t, "m": m, "v": v}


class JaxTrainer:
    """A spec's apply function, its trained params pytree and optimizer state on one device."""

    framework = "jax"

    def __init__(self, spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> None:
        self.spec = logits_spec(spec)
        self.config = config
        kind, index = parse_device(device)
        devs = jax.devices("gpu" if kind == "cuda" else "cpu")
        if index >= len(devs):
            raise BackendError(f"JAX sees {len(devs)} {kind} device(s); asked for {device!r}")
        self.jax_device = devs[index]
        apply, params = make_apply(self.spec)
        self.names = trained_param_names(self.spec)
        trained = {rn.name for rn in self.spec.resolved() if rn.op in TRAINED_OPS}
        self._where: dict[str, tuple[str, str]] = {}
        for rn in self.spec.resolved():
            if rn.name in trained:
                for role, pname in rn.param_names.items():
                    if not np.array_equal(
                        params[rn.name][role], rn.params[role].astype(np.float32)
                    ):
                        raise BackendError(
                            f"Node {rn.name!r}: parameter {role!r} ({pname}) differs in the JAX "
                            "params pytree built from the spec"
                        )
                    self._where[pname] = (rn.name, role)
        put = lambda t: jax.device_put(t, self.jax_device)  # noqa: E731
        self.params = put({k: v for k, v in params.items() if k in trained})
        frozen = put({k: v for k, v in params.items() if k not in trained})
        self.state = put(init_optimizer_state(self.params, config))

        def loss_fn(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
            return cross_entropy(apply({**frozen, **p}, x), y)

        def step(p: Any, s: Any, x: jax.Array, y: jax.Array, lr: jax.Array) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
            p, s = apply_update(p, grads, s, lr, config)
            return p, s, loss

        self._step = jax.jit(step)
        self._forward = jax.jit(lambda p, x: apply({**frozen, **p}, x))

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        return (
            jax.device_put(np.asarray(x, dtype=np.float32), self.jax_device),
            jax.device_put(np.asarray(y, dtype=np.int32), self.jax_device),
        )

    def train_step(self, batch: tuple[jax.Array, jax.Array], lr: float) -> float:
        """``value_and_grad`` + update in one jitted call; returns the loss (a sync point)."""
        self.params, self.state, loss = self._step(
            self.params, self.state, batch[0], batch[1], np.float32(lr)
        )
        return float(loss)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch."""
        xd = jax.device_put(np.asarray(x, dtype=np.float32), self.jax_device)
        return np.asarray(self._forward(self.params, xd))

    def export_params(self) -> dict[str, np.ndarray]:
        """Trained parameters by spec name, canonical layout (OIHW, ``(out, in)``)."""
        host = jax.device_get(self.params)
        return {
            n: np.asarray(host[node][role], dtype=np.float32)
            for n, (node, role) in self._where.items()
        }


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> JaxTrainer:
    """The JAX trainer of ``spec`` (initial weights: the spec's)."""
    return JaxTrainer(spec, config, device)
