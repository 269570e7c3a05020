"""What every framework's trainer shares: the spec it trains, its parameters, the update rules.

Each ``dlbench.backends.<framework>.training`` module subclasses :class:`SpecTrainer` and writes
only what is native: building the model, finding a spec parameter in it, moving a batch to the
device, the step itself and the forward pass. :func:`dlbench.train.loop.fit` drives any of them
through ``to_device``, ``train_step``, ``predict`` and ``export_params``.

The update rules of :mod:`dlbench.train.config` (SGD with momentum / Nesterov, Adam, coupled L2
weight decay) exist once, in :func:`update_rule`, written with arithmetic operators only, so
PyTorch tensors, TensorFlow tensors and JAX arrays run the same expressions in the same order.
Only Adam's bias corrections (:meth:`SpecTrainer.bias_corrections`) and how a new value is
stored (in place, ``assign`` or a new pytree) are the framework's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from dlbench.errors import BackendError
from dlbench.model.spec import ModelSpec, ResolvedNode
from dlbench.train.config import TrainConfig
from dlbench.train.trainable import (
    dropout_nodes,
    logits_spec,
    state_param_names,
    state_roles,
    trained_param_names,
    trained_roles,
)

#: a host array in the framework's layout -> the same weight in the spec's canonical layout
ToCanonical = Callable[[np.ndarray], np.ndarray]


def optimizer_slots(config: TrainConfig) -> tuple[str, ...]:
    """Names of the per-parameter state an optimizer keeps: ``buf`` (SGD) or ``m``, ``v`` (Adam)."""
    return ("buf",) if config.optimizer == "sgd" else ("m", "v")


def clip_grads(
    grads: list[Any],
    config: TrainConfig,
    sum_squares: Callable[[Any], Any],
    sqrt: Callable[[Any], Any],
    minimum: Callable[[Any, float], Any],
) -> list[Any]:
    """``torch.nn.utils.clip_grad_norm_``: every gradient times ``min(1, max_norm /
    (global_norm + 1e-6))`` (unchanged when ``config.clip_grad_norm`` is None)."""
    if config.clip_grad_norm is None:
        return grads
    total = sum_squares(grads[0])
    for g in grads[1:]:
        total = total + sum_squares(g)
    coef = minimum(config.clip_grad_norm / (sqrt(total) + 1e-6), 1.0)
    return [g * coef for g in grads]


def update_rule(
    p: Any,
    g: Any,
    slots: tuple[Any, ...],
    lr: Any,
    config: TrainConfig,
    corrections: tuple[Any, Any] | None,
    sqrt: Callable[[Any], Any],
) -> tuple[Any, tuple[Any, ...]]:
    """One parameter's update: ``(new_p, new_slots)`` (rules in :mod:`dlbench.train.config`).

    Args:
        p, g: The parameter and its gradient (any array type with arithmetic operators).
        slots: Its optimizer state, in :func:`optimizer_slots` order.
        lr: The learning rate of this step.
        config: The training configuration.
        corrections: Adam's ``(1 - beta1**t, sqrt(1 - beta2**t))`` for this step (None for SGD).
        sqrt: The framework's elementwise square root.
    """
    if config.optimizer == "adamw":
        if config.weight_decay:
            p = p * (1.0 - lr * config.weight_decay)  # decoupled, as torch.optim.AdamW
    elif config.weight_decay:
        g = g + config.weight_decay * p
    if config.optimizer == "sgd":
        mu = config.momentum
        buf = mu * slots[0] + g
        d = g + mu * buf if config.nesterov else buf
        return p - lr * d, (buf,)
    b1, b2 = config.betas
    bc1, bc2_sqrt = corrections  # type: ignore[misc]
    m = b1 * slots[0] + (1.0 - b1) * g
    v = b2 * slots[1] + (1.0 - b2) * (g * g)
    denom = sqrt(v) / bc2_sqrt + config.eps
    return p - (lr / bc1) * m / denom, (m, v)


def adam_corrections(
    config: TrainConfig,
    t: Any,
    power: Callable[[float, Any], Any],
    sqrt: Callable[[Any], Any],
) -> tuple[Any, Any] | None:
    """Adam's ``(1 - beta1**t, sqrt(1 - beta2**t))`` at step ``t`` (None for SGD), computed
    with the framework's ``power(beta, t)`` and ``sqrt`` (so in its precision)."""
    if config.optimizer not in ("adam", "adamw"):
        return None
    b1, b2 = config.betas
    return 1.0 - power(b1, t), sqrt(1.0 - power(b2, t))


def update_all(
    params: list[Any],
    grads: list[Any],
    state: dict[str, Any],
    lr: Any,
    config: TrainConfig,
    corrections: tuple[Any, Any] | None,
    sqrt: Callable[[Any], Any],
) -> tuple[list[Any], dict[str, list[Any]]]:
    """:func:`update_rule` on every parameter: ``(new_params, {slot: new values})``.

    ``state[slot]`` is a list parallel to ``params``; nothing is modified here.
    """
    names = optimizer_slots(config)
    new_params: list[Any] = []
    new_slots: dict[str, list[Any]] = {s: [] for s in names}
    for i, (p, g) in enumerate(zip(params, grads)):
        slots = tuple(state[s][i] for s in names)
        p, slots = update_rule(p, g, slots, lr, config, corrections, sqrt)
        new_params.append(p)
        for s, v in zip(names, slots):
            new_slots[s].append(v)
    return new_params, new_slots


class SpecTrainer(ABC):
    """A spec's model, its trained parameters and optimizer state on one device.

    The constructor takes the logits spec (:func:`~dlbench.train.trainable.logits_spec`), calls
    :meth:`build`, then finds every trained parameter with :meth:`locate` and checks it holds
    the spec's value (so a change in how a backend stores weights fails loudly, here).

    Subclasses implement :meth:`build`, :meth:`locate`, :meth:`host`, :meth:`to_device`,
    :meth:`train_step` and :meth:`predict`; :meth:`export_params` is shared.
    """

    framework: ClassVar[str] = ""

    def __init__(self, spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> None:
        self.spec = logits_spec(spec)
        self.config = config
        #: spec names of the trained parameters, in graph order
        self.names = trained_param_names(self.spec)
        #: spec names of the train-mode state (batch-norm running statistics), in graph order
        self.state_names = state_param_names(self.spec)
        #: ``(node, rate, per-sample shape)`` of every dropout node
        self.dropout = dropout_nodes(self.spec)
        self._handles: dict[str, Any] = {}
        self._to_canonical: dict[str, ToCanonical] = {}
        self.build(device)

    # -- what a framework writes ------------------------------------------------------------

    @abstractmethod
    def build(self, device: str) -> None:
        """Build the model and optimizer state on ``device`` (calls :meth:`bind_parameters`)."""

    @abstractmethod
    def locate(self, rn: ResolvedNode, role: str) -> tuple[Any, ToCanonical] | None:
        """``(handle, to_canonical)`` of the native parameter holding ``rn``'s ``role``."""

    @abstractmethod
    def host(self, handle: Any) -> np.ndarray:
        """The current value of a located parameter as a host array (framework layout)."""

    @abstractmethod
    def to_device(
        self, x: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray] | None = None
    ) -> Any:
        """Host batch (NCHW float32, int labels) and the step's shared dropout masks (node ->
        canonical-layout array, see :func:`dlbench.train.augment.dropout_masks`; None: the
        framework's own RNG) -> native tensors (not timed)."""

    @abstractmethod
    def train_step(self, batch: Any, lr: float) -> float:
        """Forward, loss, gradients, update; returns the loss (a sync point)."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch."""

    # -- shared ------------------------------------------------------------------------------

    def bind_parameters(self) -> list[Any]:
        """Locate and check every trained parameter and state array; the trained parameters'
        handles in :attr:`names` order (the state's are in :attr:`state_handles`)."""
        for rn in self.spec.resolved():
            for role in (*trained_roles(rn), *state_roles(rn)):
                pname = rn.param_names[role]
                found = self.locate(rn, role)
                if found is None or not np.array_equal(
                    found[1](self.host(found[0])), rn.params[role].astype(np.float32)
                ):
                    raise BackendError(
                        f"Node {rn.name!r}: cannot find parameter {role!r} ({pname}) in the "
                        f"{self.framework} model built from the spec"
                    )
                self._handles[pname], self._to_canonical[pname] = found
        return [self._handles[n] for n in self.names]

    @property
    def state_handles(self) -> list[Any]:
        """Handles of the train-mode state arrays, in :attr:`state_names` order."""
        return [self._handles[n] for n in self.state_names]

    def export_params(self) -> dict[str, np.ndarray]:
        """Trained parameters and running statistics by spec name, canonical layout (OIHW,
        ``(out, in)``)."""
        # copies: a host view of a CPU tensor would alias the live parameter
        return {
            n: np.array(
                self._to_canonical[n](self.host(self._handles[n])), dtype=np.float32, order="C"
            )
            for n in (*self.names, *self.state_names)
        }
