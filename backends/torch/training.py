"""PyTorch training step: the spec's ``fx.GraphModule`` trained with autograd.

The update rules of :mod:`dlbench.train.config` (SGD with momentum / Nesterov, Adam, coupled L2
weight decay) are written here in torch ops, the same expressions as in the TensorFlow and JAX
training modules, so every framework does exactly the same arithmetic (``torch.optim`` is used
only by the tests, to check this implementation against it). Same function names in every
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

from dlbench.backends.torch.backend import build_module
from dlbench.errors import BackendError
from dlbench.model.spec import ModelSpec
from dlbench.train.config import TrainConfig
from dlbench.train.trainable import TRAINED_OPS, logits_spec, trained_param_names


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy on logits, mean over the batch."""
    return F.cross_entropy(logits, labels, reduction="mean")


def init_optimizer_state(params: list[torch.Tensor], config: TrainConfig) -> dict[str, Any]:
    """Zero slots: ``buf`` (SGD) or ``m``, ``v`` (Adam), and the step count ``t``."""
    zeros = lambda: [torch.zeros_like(p) for p in params]  # noqa: E731
    if config.optimizer == "sgd":
        return {"t": 0, "buf": zeros()}
    return {"t": 0, "m": zeros(), "v": zeros()}


@torch.no_grad()
def apply_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: dict[str, Any],
    lr: float,
    config: TrainConfig,
) -> None:
    """One optimizer update in place (rules in :mod:`dlbench.train.config`)."""
    state["t"] += 1
    wd = config.weight_decay
    if config.optimizer == "sgd":
        mu = config.momentum
        for p, g, buf in zip(params, grads, state["buf"]):
            if wd:
                g = g + wd * p
            buf.mul_(mu).add_(g)
            d = g + mu * buf if config.nesterov else buf
            p.sub_(lr * d)
        return
    b1, b2 = config.betas
    t = state["t"]
    bc1 = 1.0 - b1**t
    bc2_sqrt = (1.0 - b2**t) ** 0.5
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        if wd:
            g = g + wd * p
        m.mul_(b1).add_((1.0 - b1) * g)
        v.mul_(b2).add_((1.0 - b2) * (g * g))
        denom = torch.sqrt(v) / bc2_sqrt + config.eps
        p.sub_((lr / bc1) * m / denom)


def _attr_name(node_name: str) -> str:
    """The attribute name the torch backend's emitter gives a node's layer (before de-dup)."""
    base = "".join(c if c.isalnum() else "_" for c in node_name) or "node"
    return "n_" + base if base[0].isdigit() else base


def spec_parameters(module: nn.Module, spec: ModelSpec) -> dict[str, nn.Parameter]:
    """Spec parameter name -> the module's ``nn.Parameter`` holding it (checked by value).

    The torch backend names each node's layer after the node; this reads that layout and
    checks every match against the spec's array, so a change there fails loudly here.
    """
    out: dict[str, nn.Parameter] = {}
    for rn in spec.resolved():
        if rn.op not in TRAINED_OPS:
            continue
        layer = getattr(module, _attr_name(rn.name), None)
        for role, pname in rn.param_names.items():
            p = getattr(layer, role, None)
            if not isinstance(p, nn.Parameter) or not np.array_equal(
                p.detach().cpu().numpy().reshape(rn.params[role].shape),
                rn.params[role].astype(np.float32),
            ):
                raise BackendError(
                    f"Node {rn.name!r}: cannot find parameter {role!r} ({pname}) in the torch "
                    "module built from the spec (expected a layer attribute named after the node)"
                )
            out[pname] = p
    return out


class TorchTrainer:
    """A spec's module, its trained parameters and optimizer state on one device."""

    framework = "torch"

    def __init__(self, spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> None:
        self.spec = logits_spec(spec)
        self.config = config
        self.device = torch.device(device)
        self.module = build_module(self.spec).to(self.device).train()
        pmap = spec_parameters(self.module, self.spec)
        self.names = trained_param_names(self.spec)
        self.params = [pmap[n] for n in self.names]
        trained = {id(p) for p in self.params}
        for p in self.module.parameters():
            p.requires_grad_(id(p) in trained)
        self.state = init_optimizer_state(self.params, config)

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

    def export_params(self) -> dict[str, np.ndarray]:
        """Trained parameters by spec name, canonical layout (OIHW, ``(out, in)``)."""
        shapes = self.spec.params
        return {
            n: p.detach().cpu().numpy().reshape(shapes[n].shape).astype(np.float32)
            for n, p in zip(self.names, self.params)
        }


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TorchTrainer:
    """The PyTorch trainer of ``spec`` (initial weights: the spec's)."""
    return TorchTrainer(spec, config, device)
