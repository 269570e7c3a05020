"""What every framework is given: the data, the folds, each epoch's order and each step's rate.

Computed once, in the parent process, in NumPy; saved to one ``.npz`` (read back with
``allow_pickle=False``) that every worker loads, so the batches are literally the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.train.config import TrainConfig
from dlbench.train.data import epoch_orders, holdout_indices, kfold_indices
from dlbench.train.schedule import lr_schedule


@dataclass
class Fold:
    """One training run: indices into the training split and the order of every epoch."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    orders: np.ndarray  # (epochs, len(train_idx)): positions into train_idx
    lrs: np.ndarray  # (epochs * steps_per_epoch,)


def steps_per_epoch(n_train: int, config: TrainConfig) -> int:
    if config.batch_size > n_train:
        raise ConfigError(
            f"Expected `batch_size` <= the {n_train} training samples. "
            f"Received: batch_size={config.batch_size}"
        )
    full, rest = divmod(n_train, config.batch_size)
    return full + (1 if rest and not config.drop_last else 0)


def plan_folds(y_train: np.ndarray, config: TrainConfig) -> list[Fold]:
    """The fold(s) of a run: one hold-out split (``folds == 1``) or K cross-validation folds."""
    if config.folds == 1:
        splits = [holdout_indices(y_train, config.val_fraction, config.seed, config.stratified)]
    else:
        splits = kfold_indices(y_train, config.folds, config.seed, config.stratified)
    out = []
    for k, (tr, va) in enumerate(splits):
        orders = epoch_orders(len(tr), config.epochs, config.seed + 1000 * k)
        out.append(Fold(tr, va, orders, lr_schedule(config, steps_per_epoch(len(tr), config))))
    return out


def save_plan(path: str | Path, folds: list[Fold], data: dict[str, np.ndarray]) -> None:
    arrays: dict[str, Any] = dict(data)
    for k, f in enumerate(folds):
        arrays.update(
            {
                f"fold{k}_train_idx": f.train_idx,
                f"fold{k}_val_idx": f.val_idx,
                f"fold{k}_orders": f.orders,
                f"fold{k}_lrs": f.lrs,
            }
        )
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_plan(path: str | Path) -> tuple[list[Fold], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    folds = []
    k = 0
    while f"fold{k}_train_idx" in arrays:
        folds.append(
            Fold(
                *(
                    arrays.pop(f"fold{k}_{part}")
                    for part in ("train_idx", "val_idx", "orders", "lrs")
                )
            )
        )
        k += 1
    return folds, arrays


def fold_data(fold: Fold, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays one fold trains and evaluates on."""
    x, y = data["x_train"], data["y_train"]
    out = {
        "x_train": x[fold.train_idx],
        "y_train": y[fold.train_idx],
        "x_val": x[fold.val_idx],
        "y_val": y[fold.val_idx],
    }
    if "x_test" in data:
        out.update(x_test=data["x_test"], y_test=data["y_test"])
    return out
