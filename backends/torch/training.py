"""PyTorch training step: the spec's ``fx.GraphModule`` trained with autograd.

The update rules of :mod:`dlbench.train.config` are the shared
:func:`~dlbench.backends.common.training.update_rule` on torch tensors, stored in place, so every
framework does exactly the same arithmetic (``torch.optim`` is used only by the tests, to check
this implementation against it). :class:`TorchTrainer` subclasses
:class:`~dlbench.backends.common.training.SpecTrainer`. Same function names in every
framework's ``training.py``: :func:`cross_entropy`, :func:`init_optimizer_state`,
:func:`apply_update`, :func:`make_trainer`.

Example:
    >>> import dlbench
    >>> from dlbench.train import TrainConfig
    >>> t = make_trainer(dlbench.zoo.get("mlp"), TrainConfig(epochs=1))
    >>> import numpy as np
    >>> loss = t.train_step(t.to_device(np.zeros((4, 1, 8, 8), np.float32), np.arange(4)), 0.1)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbench.backends.common.training import (
    SpecTrainer,
    adam_corrections,
    optimizer_slots,
    update_all,
)
from dlbench.backends.torch.backend import build_module
from dlbench.model.spec import ModelSpec, ResolvedNode
from dlbench.train.config import TrainConfig


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy on logits, mean over the batch."""
    return F.cross_entropy(logits, labels, reduction="mean")


def init_optimizer_state(params: list[torch.Tensor], config: TrainConfig) -> dict[str, Any]:
    """Zero slots: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""
    return {"t": 0, **{s: [torch.zeros_like(p) for p in params] for s in optimizer_slots(config)}}


@torch.no_grad()
def apply_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: dict[str, Any],
    lr: float,
    config: TrainConfig,
) -> None:
    """One optimizer update in place (:func:`~dlbench.backends.common.training.update_rule`)."""
    state["t"] += 1
    corrections = adam_corrections(config, state["t"], pow, lambda v: v**0.5)
    new_params, new_slots = update_all(params, grads, state, lr, config, corrections, torch.sqrt)
    for olds, news in ((params, new_params), *((state[s], v) for s, v in new_slots.items())):
        for old, new in zip(olds, news):
            old.copy_(new)


def _attr_name(node_name: str) -> str:
    """The attribute name the torch backend's emitter gives a node's layer (before de-dup)."""
    base = "".join(c if c.isalnum() else "_" for c in node_name) or "node"
    return "n_" + base if base[0].isdigit() else base


class TorchTrainer(SpecTrainer):
    """A spec's ``fx.GraphModule``, its trained parameters and optimizer state on one device."""

    framework = "torch"

    def build(self, device: str) -> None:
        self.device = torch.device(device)
        self.module = build_module(self.spec).to(self.device).train()
        self.params = self.bind_parameters()
        trained = {id(p) for p in self.params}
        for p in self.module.parameters():
            p.requires_grad_(id(p) in trained)
        self.state = init_optimizer_state(self.params, self.config)

    def locate(self, rn: ResolvedNode, role: str) -> tuple[nn.Parameter, Any] | None:
        """The layer attribute named after the node (the torch backend's layout)."""
        p = getattr(getattr(self.module, _attr_name(rn.name), None), role, None)
        if not isinstance(p, nn.Parameter):
            return None
        shape = rn.params[role].shape
        return p, lambda a: a.reshape(shape)

    def host(self, handle: torch.Tensor) -> np.ndarray:
        return handle.detach().cpu().numpy()

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(self.device)
        return xt, yt

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], lr: float) -> float:
        """Forward, loss, ``torch.autograd.grad``, update; returns the loss (a sync point)."""
        x, y = batch
        loss = cross_entropy(self.module(x), y)
        grads = torch.autograd.grad(loss, self.params)
        apply_update(self.params, list(grads), self.state, float(lr), self.config)
        return float(loss.detach().cpu())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch."""
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            return self.module(xt).detach().cpu().numpy()


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TorchTrainer:
    """The PyTorch trainer of ``spec`` (initial weights: the spec's)."""
    return TorchTrainer(spec, config, device)
