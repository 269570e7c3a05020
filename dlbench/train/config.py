"""The training configuration: one validated dataclass shared by every framework.

Every message says what was expected and what was received. The same :class:`TrainConfig`
drives PyTorch, TensorFlow and JAX, so "the same training run" means the same numbers here.

Definitions (identical in every framework, implemented in each framework's own ops):

* **SGD** (``optimizer="sgd"``), as ``torch.optim.SGD`` with ``dampening=0``::

      g = grad + weight_decay * p          # coupled L2, added to the gradient
      buf = momentum * buf + g             # buf starts at 0 (= torch's buf = g on step 1)
      d = g + momentum * buf if nesterov else buf
      p = p - lr * d

* **Adam** (``optimizer="adam"``), as ``torch.optim.Adam`` (``amsgrad=False``)::

      g = grad + weight_decay * p          # coupled L2 (not AdamW's decoupled decay)
      m = beta1 * m + (1 - beta1) * g
      v = beta2 * v + (1 - beta2) * g * g
      p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

  Weight decay applies to every parameter, biases included (one parameter group).

* **AdamW** (``optimizer="adamw"``), as ``torch.optim.AdamW``: Adam without the coupled L2,
  the parameter first decayed as ``p = p * (1 - lr * weight_decay)``.

* **Gradient clipping** (``clip_grad_norm``), as ``torch.nn.utils.clip_grad_norm_``: every
  gradient times ``min(1, max_norm / (global_norm + 1e-6))``, before the update.

* **Loss**: softmax cross-entropy on the logits, mean over the batch; with
  ``label_smoothing = e``, as ``torch.nn.CrossEntropyLoss(label_smoothing=e)``:
  ``(1 - e) * (-log p[y]) + e * mean_k(-log p[k])``.

* **Mixed precision** (``precision``): ``float32`` (default), ``bfloat16`` or ``float16``
  compute with float32 master weights, each framework's idiom (``torch.autocast``, a Keras
  ``mixed_*`` policy's semantics in TensorFlow, a ``jmp``-style cast in JAX). The loss
  (softmax cross-entropy), batch-norm (and layer-norm) statistics and the optimizer update stay
  float32. ``float16`` adds dynamic loss scaling as ``torch.amp.GradScaler`` defines it: the loss
  times ``scale`` (initially ``loss_scale``) before the backward pass, the gradients times
  ``1 / scale``; a step whose gradients are not all finite is skipped (no update, the optimizer's
  step count unchanged) and ``scale *= loss_scale_backoff_factor``; after
  ``loss_scale_growth_interval`` finite steps in a row ``scale *= loss_scale_growth_factor``.

* **Schedule**: see :mod:`dlbench.train.schedule`; the learning rate of every step is computed
  once (float32, NumPy) and fed to each framework's step as a scalar input.

Example:
    >>> cfg = TrainConfig(optimizer="adam", lr=1e-3, epochs=5)
    >>> cfg.batch_size
    32
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dlbench.errors import ConfigError
from dlbench.execution.config import default_threads
from dlbench.options import strict_from_dict

OPTIMIZERS = ("sgd", "adam", "adamw")
DROPOUT_RNGS = ("shared", "framework")
AUGMENTATIONS = ("none", "crop_flip")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("float32", "bfloat16", "float16")


@dataclass
class TrainConfig:
    """Everything that defines one training run (the same in every framework).

    Attributes:
        optimizer: ``sgd`` (momentum, optional Nesterov) or ``adam``.
        lr: Peak learning rate (after warm-up).
        momentum: SGD momentum (ignored by Adam).
        nesterov: SGD Nesterov momentum.
        weight_decay: Coupled L2 coefficient added to the gradient (torch.optim semantics).
        betas: Adam's ``(beta1, beta2)``.
        eps: Adam's epsilon (added to the bias-corrected ``sqrt(v)``).
        schedule: ``constant``, ``step`` (times ``gamma`` every ``step_epochs``) or ``cosine``
            (to ``min_lr`` at the last step).
        step_epochs: Epochs between decays of the ``step`` schedule.
        gamma: Decay factor of the ``step`` schedule.
        min_lr: Final learning rate of the ``cosine`` schedule.
        warmup_epochs: Linear warm-up length in epochs (may be fractional); 0 for none.
        epochs: Passes over the training data.
        batch_size: Samples per step.
        drop_last: Drop each epoch's last incomplete batch (keeps one compiled step shape).
        seed: Seed of the batch order and of the fold / validation split.
        val_fraction: Share of the training split held out (stratified) for validation when
            ``folds`` is 1; 0 for none.
        target_accuracy: Test accuracy whose first reach is timed (time-to-accuracy).
        folds: ``1`` for one run; ``K >= 2`` for K-fold cross-validation on the training split.
        stratified: Stratify folds and the validation split by class.
        warmup_steps: Steps left out of the step-time statistics (tracing, compilation).
        eval_batch_size: Batch size of the per-epoch evaluation passes.
        intra_op_threads: Threads inside one op, the same for every framework.
        inter_op_threads: Threads running independent ops concurrently.
        bn_momentum: Batch-norm momentum as PyTorch defines it (weight of the new batch
            statistic in the running statistics; Keras / Flax momentum = 1 - this).
        label_smoothing: Label smoothing of the cross-entropy (0 for none).
        clip_grad_norm: Clip the gradients' global norm to this before each update (None: no
            clipping).
        augment: ``none`` or ``crop_flip`` (random crop after zero padding by 4, horizontal
            flip; computed in NumPy from the seed, the same bytes for every framework).
        pct_start, div_factor, final_div_factor: The ``onecycle`` schedule's, as
            ``torch.optim.lr_scheduler.OneCycleLR``.
        dropout_rng: ``shared`` (every framework multiplies by the same masks, drawn from one
            seeded NumPy stream: step-for-step comparable) or ``framework`` (each framework's
            own RNG, inside its step: the idiomatic cost, runs no longer comparable step by step).
        precision: Compute precision of the training step: ``float32``, ``bfloat16`` or
            ``float16`` (mixed: float32 master weights; see the module docstring).
        loss_scale: ``float16`` only: the initial dynamic loss scale (``GradScaler``'s
            ``init_scale``, 2**16).
        loss_scale_growth_factor, loss_scale_backoff_factor, loss_scale_growth_interval:
            ``float16`` only: as ``torch.amp.GradScaler``'s ``growth_factor`` (2),
            ``backoff_factor`` (0.5) and ``growth_interval`` (2000 steps).
    """

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "constant"
    step_epochs: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    drop_last: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    target_accuracy: float | None = 0.95
    folds: int = 1
    stratified: bool = True
    warmup_steps: int = 5
    eval_batch_size: int = 512
    intra_op_threads: int = field(default_factory=default_threads)
    inter_op_threads: int = 1
    bn_momentum: float = 0.1
    dropout_rng: str = "shared"
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    augment: str = "none"
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    precision: str = "float32"
    loss_scale: float = 2.0**16
    loss_scale_growth_factor: float = 2.0
    loss_scale_backoff_factor: float = 0.5
    loss_scale_growth_interval: int = 2000

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        def num(name: str, low: float, high: float = math.inf, *, open_low: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if ok:
                ok = (v > low if open_low else v >= low) and v <= high
            if not ok:
                lo = f"> {low}" if open_low else f">= {low}"
                hi = f" and <= {high}" if high != math.inf else ""
                raise ConfigError(
                    f"Expected `{name}` to be a number {lo}{hi}. Received: {name}={v!r}"
                )

        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(
                    f"Expected `{name}` to be an int >= {low}. Received: {name}={v!r}"
                )

        def flag(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise ConfigError(f"Expected `{name}` to be a bool. Received: {name}={v!r}")

        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"Expected `optimizer` in {OPTIMIZERS}. Received: optimizer={self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"Expected `schedule` in {SCHEDULES}. Received: schedule={self.schedule!r}"
            )
        num("lr", 0.0, open_low=True)
        num("momentum", 0.0, 1.0)
        flag("nesterov")
        if self.nesterov and not self.momentum > 0:
            raise ConfigError(
                f"Expected `momentum` > 0 with nesterov=True. Received: momentum={self.momentum!r}"
            )
        num("weight_decay", 0.0)
        if len(self.betas) != 2 or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
            for b in self.betas
        ):
            raise ConfigError(
                f"Expected `betas` to be two numbers in [0, 1). Received: betas={self.betas!r}"
            )
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        num("eps", 0.0, open_low=True)
        integer("step_epochs", 1)
        num("gamma", 0.0, 1.0, open_low=True)
        num("min_lr", 0.0)
        if self.min_lr > self.lr:
            raise ConfigError(
                f"Expected `min_lr` <= lr={self.lr!r}. Received: min_lr={self.min_lr!r}"
            )
        num("warmup_epochs", 0.0)
        integer("epochs", 1)
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"Expected `warmup_epochs` < epochs={self.epochs}. "
                f"Received: warmup_epochs={self.warmup_epochs!r}"
            )
        integer("batch_size", 1)
        flag("drop_last")
        integer("seed", 0)
        num("val_fraction", 0.0, 0.5)
        if self.target_accuracy is not None:
            num("target_accuracy", 0.0, 1.0, open_low=True)
        integer("folds", 1)
        flag("stratified")
        integer("warmup_steps", 0)
        integer("eval_batch_size", 1)
        integer("intra_op_threads", 1)
        integer("inter_op_threads", 1)
        num("bn_momentum", 0.0, 1.0)
        num("label_smoothing", 0.0, 1.0)
        if self.clip_grad_norm is not None:
            num("clip_grad_norm", 0.0, open_low=True)
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(
                f"Expected `augment` in {AUGMENTATIONS}. Received: augment={self.augment!r}"
            )
        num("pct_start", 0.0, 1.0, open_low=True)
        num("div_factor", 0.0, open_low=True)
        num("final_div_factor", 0.0, open_low=True)
        if self.dropout_rng not in DROPOUT_RNGS:
            raise ConfigError(
                f"Expected `dropout_rng` in {DROPOUT_RNGS}. Received: dropout_rng={self.dropout_rng!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"Expected `precision` in {PRECISIONS}. Received: precision={self.precision!r}"
            )
        num("loss_scale", 0.0, open_low=True)
        num("loss_scale_growth_factor", 1.0)
        num("loss_scale_backoff_factor", 0.0, 1.0, open_low=True)
        if self.loss_scale_backoff_factor == 1.0:
            raise ConfigError(
                "Expected `loss_scale_backoff_factor` < 1. Received: loss_scale_backoff_factor=1.0"
            )
        integer("loss_scale_growth_interval", 1)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named recipe; ``overrides`` replace any of its fields.

        ``cifar``: the standard ResNet-on-CIFAR-10 recipe (SGD, Nesterov momentum 0.9, weight
        decay 5e-4, batch 128, lr 0.1 with a one-cycle schedule, label smoothing 0.1, random
        crop with padding 4 and horizontal flip; normalise the images with
        :data:`dlbench.train.augment.CIFAR10_MEAN` / ``CIFAR10_STD``).
        """
        presets = {
            "cifar": dict(
                optimizer="sgd",
                lr=0.1,
                momentum=0.9,
                nesterov=True,
                weight_decay=5e-4,
                batch_size=128,
                schedule="onecycle",
                label_smoothing=0.1,
                augment="crop_flip",
                epochs=30,
                val_fraction=0.0,
                target_accuracy=0.94,
            )
        }
        if name not in presets:
            raise ConfigError(f"Expected a preset in {sorted(presets)}. Received: {name!r}")
        return cls.from_dict({**presets[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, data, "training option")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d
