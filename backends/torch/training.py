"""PyTorch training step: the spec's ``fx.GraphModule`` trained with autograd, in train mode.

The module is the backend's own emission (:data:`dlbench.backends.torch.ops.OPS`) with two
train-mode layers swapped in: ``dropout`` becomes :class:`SharedDropout` (multiplies by the mask
the step is given, or ``F.dropout`` with torch's RNG), and a constant ``add`` operand (a position
embedding) becomes a trained parameter. Batch norm is ``nn.BatchNorm*d`` itself in train mode
(the definition every framework follows), with ``TrainConfig.bn_momentum``.

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
from torch import fx, nn

from dlbench.backends.common.training import (
    SpecTrainer,
    adam_corrections,
    clip_grads,
    optimizer_slots,
    update_all,
)
from dlbench.backends.torch.ops import OPS, Emitter
from dlbench.errors import BackendError
from dlbench.model.spec import ModelSpec, ResolvedNode
from dlbench.train.config import TrainConfig


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Softmax cross-entropy on logits (optionally label-smoothed), mean over the batch."""
    return F.cross_entropy(logits, labels, reduction="mean", label_smoothing=label_smoothing)


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
    grads = clip_grads(grads, config, lambda g: (g * g).sum(), torch.sqrt, torch.clamp_max)
    corrections = adam_corrections(config, state["t"], pow, lambda v: v**0.5)
    new_params, new_slots = update_all(params, grads, state, lr, config, corrections, torch.sqrt)
    for olds, news in ((params, new_params), *((state[s], v) for s, v in new_slots.items())):
        for old, new in zip(olds, news):
            old.copy_(new)


class SharedDropout(nn.Module):
    """Inverted dropout: times the step's shared ``mask`` when one is set, else ``F.dropout``
    (torch's RNG); identity in eval mode."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        if self.mask is not None:
            return x * self.mask
        return F.dropout(x, self.rate, True)


class AddParameter(nn.Module):
    """``x + other`` with ``other`` a trained parameter (a position embedding)."""

    def __init__(self, other: np.ndarray) -> None:
        super().__init__()
        self.other = nn.Parameter(torch.from_numpy(np.array(other, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.other


def build_train_module(spec: ModelSpec) -> fx.GraphModule:
    """The spec as an ``fx.GraphModule`` with the train-mode layers (in train mode)."""
    e = Emitter()
    env: dict[str, fx.Node] = {t.name: e.graph.placeholder(t.name) for t in spec.inputs}
    for rn in spec.resolved():
        xs = [env[i] for i in rn.inputs]
        if rn.op == "dropout":
            env[rn.name] = e.module(rn, SharedDropout(float(rn.attrs["rate"])), (xs[0],))
        elif rn.op == "add" and "other" in rn.params:
            env[rn.name] = e.module(rn, AddParameter(rn.params["other"]), (xs[0],))
        else:
            env[rn.name] = OPS.lookup(rn)(e, xs, rn)
    e.graph.output(env[spec.outputs[0]])
    return fx.GraphModule(e.root, e.graph, class_name=f"{spec.name}_train").train()


#: op -> spec role -> attribute path inside the node's layer
_ROLE_PATHS = {
    "batch_norm": {"mean": "running_mean", "var": "running_var"},
    "lstm": {r: f"lstm.{r}_l0" for r in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "multi_head_attention": {
        "in_weight": "attn.in_proj_weight",
        "in_bias": "attn.in_proj_bias",
        "out_weight": "attn.out_proj.weight",
        "out_bias": "attn.out_proj.bias",
    },
}


def _attr_name(node_name: str) -> str:
    """The attribute name the torch backend's emitter gives a node's layer (before de-dup)."""
    base = "".join(c if c.isalnum() else "_" for c in node_name) or "node"
    return "n_" + base if base[0].isdigit() else base


class TorchTrainer(SpecTrainer):
    """A spec's ``fx.GraphModule``, its trained parameters and optimizer state on one device."""

    framework = "torch"

    def build(self, device: str) -> None:
        self.device = torch.device(device)
        torch.manual_seed(self.config.seed)  # the framework's own dropout RNG, when asked
        self.module = build_train_module(self.spec).to(self.device).train()
        for m in self.module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = self.config.bn_momentum
        self.dropouts = {
            rn.name: getattr(self.module, _attr_name(rn.name))
            for rn in self.spec.resolved()
            if rn.op == "dropout"
        }
        self.params = self.bind_parameters()
        trained = {id(p) for p in self.params}
        for p in self.module.parameters():
            p.requires_grad_(id(p) in trained)
        self.state = init_optimizer_state(self.params, self.config)

    def locate(self, rn: ResolvedNode, role: str) -> tuple[torch.Tensor, Any] | None:
        """The tensor inside the layer named after the node (the torch backend's layout)."""
        p: Any = getattr(self.module, _attr_name(rn.name), None)
        for part in _ROLE_PATHS.get(rn.op, {}).get(role, role).split("."):
            p = getattr(p, part, None)
        if not isinstance(p, torch.Tensor):
            return None
        shape = rn.params[role].shape
        return p, lambda a: a.reshape(shape)

    def host(self, handle: torch.Tensor) -> np.ndarray:
        return handle.detach().cpu().numpy()

    def to_device(
        self, x: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]:
        def put(a: np.ndarray, dtype: Any) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(self.device)

        m = None if masks is None else {k: put(v, np.float32) for k, v in masks.items()}
        return put(x, np.float32), put(y, np.int64), m

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor, Any], lr: float) -> float:
        """Forward, loss, ``torch.autograd.grad``, update; returns the loss (a sync point)."""
        x, y, masks = batch
        if masks is None and self.dropout and self.config.dropout_rng == "shared":
            raise BackendError(
                "Expected the step's shared dropout masks (dropout_rng='shared'). Received none"
            )
        if masks is not None:
            for name, mask in masks.items():
                self.dropouts[name].mask = mask
        loss = cross_entropy(self.module(x), y, self.config.label_smoothing)
        grads = torch.autograd.grad(loss, self.params)
        apply_update(self.params, list(grads), self.state, float(lr), self.config)
        if masks is not None:
            for name in masks:
                self.dropouts[name].mask = None
        return float(loss.detach().cpu())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout) of a host batch, eval mode (running statistics)."""
        self.module.eval()
        try:
            with torch.no_grad():
                xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
                return self.module(xt).detach().cpu().numpy()
        finally:
            self.module.train()


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TorchTrainer:
    """The PyTorch trainer of ``spec`` (initial weights: the spec's)."""
    return TorchTrainer(spec, config, device)
