"""Learning-rate schedules, computed once per run (NumPy, float32) and fed to every framework.

The learning rate is data for the step, like the batch order: each framework's step receives
the float32 value of its step and does the update in its own ops.

With ``W = round(warmup_epochs * steps_per_epoch)`` warm-up steps and ``T`` steps in all, the
rate of step ``s`` (0-based) is:

* warm-up (``s < W``): ``lr * (s + 1) / W`` (linear, reaching ``lr`` on step ``W - 1``);
* ``constant``: ``lr``;
* ``step``: ``lr * gamma ** floor(epoch / step_epochs)`` with ``epoch = s // steps_per_epoch``;
* ``cosine``: ``min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2``, so the first
  step after warm-up uses ``lr`` and the rate falls towards ``min_lr`` at the end;
* ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR(max_lr=lr, total_steps=T)`` (cosine
  annealing, two phases): from ``lr / div_factor`` up to ``lr`` at step ``pct_start * T - 1``,
  then down to ``lr / div_factor / final_div_factor`` at step ``T - 1`` (warm-up ignored: the
  first phase is its warm-up).

Example:
    >>> from dlbench.train.config import TrainConfig
    >>> lr_schedule(TrainConfig(lr=0.1, epochs=2, schedule="step", step_epochs=1), 2).tolist()
    [0.10000000149011612, 0.10000000149011612, 0.009999999776482582, 0.009999999776482582]
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.errors import ConfigError
from dlbench.train.config import TrainConfig


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every step of the run, shape ``(epochs * steps_per_epoch,)``."""
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ConfigError(
            f"Expected `steps_per_epoch` to be a positive int. Received: {steps_per_epoch!r}"
        )
    total = config.epochs * steps_per_epoch
    warm = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    out = np.empty(total, dtype=np.float64)
    if config.schedule == "onecycle":
        return _one_cycle(config, total)
    for s in range(total):
        if s < warm:
            out[s] = config.lr * (s + 1) / warm
        elif config.schedule == "constant":
            out[s] = config.lr
        elif config.schedule == "step":
            out[s] = config.lr * config.gamma ** ((s // steps_per_epoch) // config.step_epochs)
        else:  # cosine
            t = (s - warm) / max(1, total - warm)
            out[s] = config.min_lr + (config.lr - config.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
    return out.astype(np.float32)


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _one_cycle(config: TrainConfig, total: int) -> np.ndarray:
    """``OneCycleLR``'s rates (``three_phase=False``, ``anneal_strategy="cos"``)."""
    initial = config.lr / config.div_factor
    final = initial / config.final_div_factor
    end1 = float(config.pct_start * total) - 1
    end2 = float(total - 1)
    out = np.empty(total, dtype=np.float64)
    for s in range(total):
        if s <= end1:
            out[s] = _cos(initial, config.lr, s / end1) if end1 > 0 else config.lr
        else:
            out[s] = _cos(config.lr, final, (s - end1) / (end2 - end1))
    return out.astype(np.float32)
