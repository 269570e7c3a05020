"""Training in the current process: pick the framework's trainer, run every fold.

The worker (:mod:`dlbench.train.worker`) calls this in a fresh process per framework; tests call
it directly.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.model.spec import ModelSpec
from dlbench.train.config import TrainConfig
from dlbench.train.loop import fit
from dlbench.train.plan import Fold, fold_data

#: framework -> module with ``make_trainer`` (same function names in each)
TRAINERS = {
    "torch": "dlbench.backends.torch.training",
    "tensorflow": "dlbench.backends.tensorflow.training",
    "jax": "dlbench.backends.jax.training",
}


def trainer_module(framework: str) -> Any:
    if framework not in TRAINERS:
        raise ConfigError(
            f"Expected a backend with a training implementation, one of {sorted(TRAINERS)}. "
            f"Received: {framework!r}"
        )
    return importlib.import_module(TRAINERS[framework])


def run_folds(
    framework: str,
    spec: ModelSpec,
    config: TrainConfig,
    folds: list[Fold],
    data: dict[str, np.ndarray],
    num_classes: int,
    device: str = "cpu",
    on_epoch: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Train a fresh model (the spec's initial weights) on each fold.

    Returns one ``(record, trained_params)`` per fold; ``record`` is JSON-safe and holds
    ``build_time_s`` besides :func:`dlbench.train.loop.fit`'s fields.
    """
    mod = trainer_module(framework)
    out = []
    for k, fold in enumerate(folds):
        t0 = time.perf_counter()
        trainer = mod.make_trainer(spec, config, device)
        build = time.perf_counter() - t0
        cb = None if on_epoch is None else (lambda e, row, k=k: on_epoch(k, e, row))
        record = fit(trainer, config, fold_data(fold, data), fold.orders, fold.lrs, num_classes, cb)
        record.update(
            fold=k, build_time_s=build, n_train=len(fold.train_idx), n_val=len(fold.val_idx)
        )
        out.append((record, trainer.export_params()))
    return out
