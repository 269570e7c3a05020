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

Mixed precision (``TrainConfig.precision``) is PyTorch's own: ``torch.autocast(device_type,
dtype)`` around the forward pass and the loss (float32 parameters; autocast runs matrix products
and convolutions in bfloat16 / float16 and the cross-entropy in float32), and for float16
``torch.amp.GradScaler`` driving the shared update rule wrapped as a ``torch.optim.Optimizer``
(:class:`SpecOptimizer`). The dtypes the first step's matrix products and convolutions really
ran in are observed with a ``TorchDispatchMode`` (below autocast) and recorded.

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
from torch.utils._python_dispatch import TorchDispatchMode

from dlbench.backends.common.mixed_precision import precision_record, uses_loss_scaling
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


class SpecOptimizer(torch.optim.Optimizer):
    """The shared update rule (:func:`apply_update`) as a ``torch.optim.Optimizer``, so that
    ``torch.amp.GradScaler`` unscales its gradients and skips its step on non-finite ones."""

    def __init__(self, params: list[torch.Tensor], slots: dict[str, Any], config: TrainConfig):
        super().__init__(params, {})
        self.params, self.slots, self.config = params, slots, config
        self.lr = 0.0

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 - torch.optim's
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        apply_update(self.params, grads, self.slots, self.lr, self.config)


#: the aten ops whose input dtype says what precision the step computed in
_COMPUTE_OPS = ("mm", "addmm", "bmm", "baddbmm", "matmul", "convolution", "linear", "_lstm")


class _DtypeRecorder(TorchDispatchMode):
    """Counts the input dtype of every matrix product / convolution dispatched (after
    autocast has cast the operands)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        name = str(func.overloadpacket).rpartition(".")[2]
        if name in _COMPUTE_OPS or name.startswith("convolution"):
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None and first.is_floating_point():
                key = str(first.dtype).removeprefix("torch.")
                self.seen[key] = self.seen.get(key, 0) + 1
        return func(*args, **(kwargs or {}))


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
        self._init_precision()

    def _init_precision(self) -> None:
        """``torch.autocast`` for bfloat16 / float16 (refused, never silently float32, where
        this device cannot autocast to it) and ``GradScaler`` for float16."""
        cfg, kind = self.config, self.device.type
        self.amp_dtype = None if cfg.precision == "float32" else getattr(torch, cfg.precision)
        self.observed: dict[str, int] | None = None
        self.skipped_steps = 0
        self.scaler = self.optimizer = None
        if self.amp_dtype is not None:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.autocast(kind, dtype=self.amp_dtype):
                    enabled = torch.is_autocast_enabled(kind)
            if not enabled:
                why = "; ".join(str(w.message) for w in caught) or "autocast stayed disabled"
                raise BackendError(
                    f"Expected a precision torch can autocast to on {self.device}. Received: "
                    f"precision={cfg.precision!r} ({why})"
                )
            self._probe_precision()
        if uses_loss_scaling(cfg):
            self.optimizer = SpecOptimizer(self.params, self.state, cfg)
            self.scaler = torch.amp.GradScaler(
                kind,
                init_scale=cfg.loss_scale,
                growth_factor=cfg.loss_scale_growth_factor,
                backoff_factor=cfg.loss_scale_backoff_factor,
                growth_interval=cfg.loss_scale_growth_interval,
            )

    def _probe_precision(self) -> None:
        """One eval-mode forward pass under autocast: a kernel this device lacks in the compute
        dtype (oneDNN's LSTM in bfloat16 on a CPU without bfloat16 support, for one) is a clear
        refusal here, not an obscure error at the first step."""
        try:
            self.predict(np.zeros((1, *self.spec.input_shape), np.float32))
        except RuntimeError as exc:
            raise BackendError(
                f"Expected a precision torch can run on {self.device}. Received: precision="
                f"{self.config.precision!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}"
            ) from exc

    def _autocast(self) -> Any:
        return torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        )

    def loss_scale(self) -> float | None:
        """The current dynamic loss scale (float16), else None."""
        return None if self.scaler is None else float(self.scaler.get_scale())

    def precision_info(self) -> dict[str, Any]:
        """What this trainer ran (:func:`~dlbench.backends.common.mixed_precision.precision_record`)."""
        mech = (
            "float32 (no autocast)"
            if self.amp_dtype is None
            else f"torch.autocast(device_type={self.device.type!r}, dtype=torch.{self.config.precision})"
            + (" + torch.amp.GradScaler" if self.scaler is not None else "")
        )
        return precision_record(
            self.config,
            mech,
            self.observed,
            self.loss_scale(),
            self.skipped_steps if self.scaler is not None else None,
        )

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
        recorder = _DtypeRecorder() if self.observed is None else None
        try:
            if recorder is not None:
                recorder.__enter__()
            with self._autocast():
                loss = cross_entropy(self.module(x), y, self.config.label_smoothing)
            if self.scaler is None:
                grads = torch.autograd.grad(loss, self.params)
                apply_update(self.params, list(grads), self.state, float(lr), self.config)
            else:
                self._scaled_step(loss, float(lr))
        finally:
            if recorder is not None:
                recorder.__exit__(None, None, None)
                self.observed = recorder.seen
        if masks is not None:
            for name in masks:
                self.dropouts[name].mask = None
        return float(loss.detach().cpu())

    def _scaled_step(self, loss: torch.Tensor, lr: float) -> None:
        """float16: ``GradScaler``'s scale / step / update (the step skipped when a gradient
        is not finite, the scale then backed off)."""
        assert self.scaler is not None and self.optimizer is not None
        for p in self.params:
            p.grad = None
        self.scaler.scale(loss).backward()
        self.optimizer.lr = lr
        before = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < before:  # backed off: this step was skipped
            self.skipped_steps += 1

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (canonical layout, float32) of a host batch, eval mode (running statistics),
        in the training precision."""
        self.module.eval()
        try:
            with torch.no_grad(), self._autocast():
                xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
                return self.module(xt).detach().float().cpu().numpy()
        finally:
            self.module.train()


def make_trainer(spec: ModelSpec, config: TrainConfig, device: str = "cpu") -> TorchTrainer:
    """The PyTorch trainer of ``spec`` (initial weights: the spec's)."""
    return TorchTrainer(spec, config, device)
