"""JAX training step: the spec's pure ``apply(params, x)`` trained with ``jax.value_and_grad``
inside one ``jax.jit``-compiled step.

The params pytree is the backend's own (``{node: {role: array}}``, canonical layout); only the
trained ops' leaves are differentiated. The shared
:func:`~dlbench.backends.common.training.update_rule` runs on every leaf, the same expressions
as in the PyTorch and TensorFlow training modules; :class:`JaxTrainer` subclasses
:class:`~dlbench.backends.common.training.SpecTrainer`. Same function names in every framework's ``training.py``: :func:`cross_entropy`,
:func:`init_optimizer_state`, :func:`apply_update`, :func:`make_trainer`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlbench.backends.common.training import (
    SpecTrainer,
    adam_corrections,
    optimizer_slots,
    update_all,
)
from dlbench.backends.jax.backend import make_apply
from dlbench.errors import BackendError
from dlbench.model.backend import parse_device
from dlbench.model.spec import ModelSpec, ResolvedNode
from dlbench.train.config import TrainConfig
from dlbench.train.trainable import TRAINED_OPS


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy on logits, mean over the batch."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


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
    new_p, new_slots = update_all(
        leaves, tree.flatten_up_to(grads), flat, lr, config, corrections, jnp.sqrt
    )
    new_state = {"t": t, **{s: tree.unflatten(v) for s, v in new_slots.items()}}
    return tree.unflatten(new_p), new_state


class JaxTrainer(SpecTrainer):
    """A spec's apply function, its trained params pytree and optimizer state on one device."""

    framework = "jax"

    def build(self, device: str) -> None:
        kind, index = parse_device(device)
        devs = jax.devices("gpu" if kind == "cuda" else "cpu")
        if index >= len(devs):
            raise BackendError(f"JAX sees {len(devs)} {kind} device(s); asked for {device!r}")
        self.jax_device = devs[index]
        apply, params = make_apply(self.spec)
        trained = {rn.name for rn in self.spec.resolved() if rn.op in TRAINED_OPS}
        self.params = params  # host arrays while the parameters are located
        self.bind_parameters()
        put = lambda t: jax.device_put(t, self.jax_device)  # noqa: E731
        self.params = put({k: v for k, v in params.items() if k in trained})
        frozen = put({k: v for k, v in params.items() if k not in trained})
        self.state = put(init_optimizer_state(self.params, self.config))
        config = self.config

        def loss_fn(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
            return cross_entropy(apply({**frozen, **p}, x), y)

        def step(p: Any, s: Any, x: jax.Array, y: jax.Array, lr: jax.Array) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
            p, s = apply_update(p, grads, s, lr, config)
            return p, s, loss

        self._step = jax.jit(step)
        self._forward = jax.jit(lambda p, x: apply({**frozen, **p}, x))

    def locate(self, rn: ResolvedNode, role: str) -> tuple[tuple[str, str], Any] | None:
        """The ``(node, role)`` leaf of the params pytree (canonical layout)."""
        if role not in self.params.get(rn.name, {}):
            return None
        return (rn.name, role), _same

    def host(self, handle: tuple[str, str]) -> np.ndarray:
        node, role = handle
        return np.asarray(jax.device_get(self.params[node][role]))

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


def _same(a: np.ndarray) -> np.ndarray:
    return a


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> JaxTrainer:
    """The JAX trainer of ``spec`` (initial weights: the spec's)."""
    return JaxTrainer(spec, config, device)
