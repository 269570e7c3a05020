"""The framework-neutral training loop: batches, timing, per-epoch evaluation, curves.

:func:`fit` drives any trainer with the same small interface (each framework's
``make_trainer`` in ``dlbench.backends.<framework>.training``)::

    trainer.to_device(x, y, masks) -> batch  # host NumPy -> native tensors (not timed)
    trainer.train_step(batch, lr) -> float  # one step; returns the loss (a sync point)
    trainer.predict(x) -> np.ndarray      # logits of a host batch
    trainer.export_params() -> {name: array}  # canonical layout

What is timed: each ``train_step`` call alone (inputs already converted; it ends when the loss
is on the host), so data gathering is never inside a timed region. The first
``config.warmup_steps`` steps (tracing, compilation) are kept but left out of the statistics.
Evaluation (whole train, validation and test sets after every epoch) is outside the epoch time
and outside time-to-accuracy; its loss and accuracy are computed here in float64 NumPy from each
framework's logits, so every framework is scored by the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from dlbench.analysis.stats import summarize
from dlbench.train.augment import augment_batch, dropout_masks
from dlbench.train.config import TrainConfig
from dlbench.train.data import batch_indices
from dlbench.train.diagnose import LearningCurve, diagnose


class Trainer(Protocol):  # pragma: no cover - an interface
    def to_device(self, x: np.ndarray, y: np.ndarray, masks: Any = None) -> Any: ...
    def train_step(self, batch: Any, lr: float) -> float: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...
    def export_params(self) -> dict[str, np.ndarray]: ...


def loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean softmax cross-entropy (float64) and accuracy of logits against labels."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.asarray(labels, dtype=np.int64)
    loss = float(-logp[np.arange(len(y)), y].mean())
    return loss, float((z.argmax(axis=1) == y).mean())


def evaluate(
    trainer: Trainer, x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[float, float]:
    logits = np.concatenate(
        [trainer.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    return loss_and_accuracy(logits, y)


def fit(
    trainer: Trainer,
    config: TrainConfig,
    data: dict[str, np.ndarray],
    orders: np.ndarray,
    lrs: np.ndarray,
    num_classes: int,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    meter: Any = None,
) -> dict[str, Any]:
    """Train for ``config.epochs`` epochs; return the run record (JSON-safe).

    Args:
        trainer: A framework trainer (interface in the module docstring).
        config: The training configuration.
        data: ``x_train``, ``y_train`` and optionally ``x_val``/``y_val``, ``x_test``/``y_test``.
        orders: ``(epochs, n_train)`` sample order of each epoch (indices into ``x_train``).
        lrs: Learning rate of every step, ``(epochs * steps_per_epoch,)``.
        num_classes: Classes (for the diagnosis' chance level).
        on_epoch: Called after each epoch with ``(epoch, row)``.
        meter: An energy monitor (``start()``/``stop()``) read around each epoch's training
            steps (not the evaluations); the readings are ``energy_readings`` in the record,
            which the caller turns into the ``energy`` record (not JSON-safe until then).
    """
    x_tr, y_tr = data["x_train"], data["y_train"]
    has_val = len(data.get("y_val", ())) > 0
    has_test = len(data.get("y_test", ())) > 0
    curve = LearningCurve()
    step_losses: list[float] = []
    step_times: list[float] = []
    epoch_times: list[float] = []
    readings: list[Any] = []
    train_time = 0.0
    tta_s = tta_epoch = None
    step = 0
    ebs = config.eval_batch_size
    drop = getattr(trainer, "dropout", []) if config.dropout_rng == "shared" else []
    for epoch in range(config.epochs):
        batches = batch_indices(orders[epoch], config.batch_size, config.drop_last)
        if meter is not None:
            meter.start()
        t_epoch = time.perf_counter()
        epoch_losses = []
        for idx in batches:
            masks = dropout_masks(drop, len(idx), config.seed, step) if drop else None
            x = x_tr[idx]
            if config.augment == "crop_flip" and x.ndim == 4:
                x = augment_batch(x, config.seed, step)  # NumPy, the same bytes everywhere
            batch = trainer.to_device(x, y_tr[idx], masks)
            t0 = time.perf_counter()
            loss = trainer.train_step(batch, float(lrs[step]))
            step_times.append(time.perf_counter() - t0)
            step_losses.append(loss)
            epoch_losses.append(loss)
            step += 1
        epoch_times.append(time.perf_counter() - t_epoch)
        if meter is not None:
            readings.append(meter.stop())
        train_time += epoch_times[-1]
        curve.step_loss_mean.append(float(np.mean(epoch_losses)))
        tl, ta = evaluate(trainer, x_tr, y_tr, ebs)
        curve.train_loss.append(tl)
        curve.train_accuracy.append(ta)
        row: dict[str, Any] = {"train_loss": tl, "train_accuracy": ta, "lr": float(lrs[step - 1])}
        if has_val:
            vl, va = evaluate(trainer, data["x_val"], data["y_val"], ebs)
            curve.val_loss.append(vl)
            curve.val_accuracy.append(va)
            row.update(val_loss=vl, val_accuracy=va)
        if has_test:
            sl, sa = evaluate(trainer, data["x_test"], data["y_test"], ebs)
            curve.test_loss.append(sl)
            curve.test_accuracy.append(sa)
            row.update(test_loss=sl, test_accuracy=sa)
            if (
                tta_s is None
                and config.target_accuracy is not None
                and sa >= config.target_accuracy
            ):
                tta_s, tta_epoch = train_time, epoch + 1
        row.update(epoch_time_s=epoch_times[-1], train_time_s=train_time)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if not math.isfinite(tl):
            break
    measured = step_times[config.warmup_steps :] or step_times
    total = sum(measured)
    final = {
        "train_loss": curve.train_loss[-1],
        "train_accuracy": curve.train_accuracy[-1],
        "val_loss": curve.val_loss[-1] if has_val else None,
        "val_accuracy": curve.val_accuracy[-1] if has_val else None,
        "test_loss": curve.test_loss[-1] if has_test else None,
        "test_accuracy": curve.test_accuracy[-1] if has_test else None,
    }
    return {
        "steps": step,
        "batch_size": config.batch_size,
        "step_losses": step_losses,
        "step_times_s": step_times,
        "warmup_steps": min(config.warmup_steps, len(step_times)),
        "first_step_s": step_times[0] if step_times else None,
        "step_time": summarize(measured) if measured else None,
        "samples_per_s": config.batch_size * len(measured) / total if total > 0 else None,
        "epoch_times_s": epoch_times,
        # the first epoch includes tracing / compilation: left out when there are others
        "epoch_time_s": float(np.median(epoch_times[1:] if len(epoch_times) > 1 else epoch_times)),
        "first_epoch_s": epoch_times[0],
        "train_time_s": train_time,
        "target_accuracy": config.target_accuracy,
        "time_to_accuracy_s": tta_s,
        "epochs_to_accuracy": tta_epoch,
        "curves": curve.to_dict(),
        "final": final,
        "diagnosis": diagnose(curve, num_classes).to_dict(),
        **({"energy_readings": readings} if meter is not None else {}),
    }
