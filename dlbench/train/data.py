"""Data order and splits: seeded, computed once in NumPy and given to every framework.

Data order is data, not maths in the step: every framework receives the same batches (the same
sample indices in the same order), computed here.

Example:
    >>> order = epoch_orders(10, epochs=2, seed=0)
    >>> order.shape, sorted(order[0].tolist()) == list(range(10))
    ((2, 10), True)
    >>> [len(b) for b in batch_indices(order[0], 4, drop_last=False)]
    [4, 4, 2]
"""

from __future__ import annotations

import numpy as np

from dlbench.errors import ConfigError


def epoch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """One seeded permutation of ``range(n)`` per epoch, shape ``(epochs, n)`` (int64)."""
    if n < 1:
        raise ConfigError(f"Expected at least one training sample. Received: n={n}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


def batch_indices(order: np.ndarray, batch_size: int, drop_last: bool = True) -> list[np.ndarray]:
    """Consecutive slices of one epoch's order; the last one is dropped if short and asked."""
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    out = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
    if not out:
        raise ConfigError(
            f"Expected batch_size <= number of training samples ({n}) with drop_last. "
            f"Received: batch_size={batch_size}"
        )
    return out


def _check_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ConfigError(
            f"Expected a 1-D integer label array. Received: shape {y.shape}, dtype {y.dtype}"
        )
    return y


def kfold_indices(
    labels: np.ndarray, k: int, seed: int = 0, stratified: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation splits: ``k`` pairs ``(train_indices, val_indices)``.

    Every sample is in exactly one validation fold; folds differ in size by at most one. With
    ``stratified``, each class's (seeded, shuffled) samples are dealt round-robin over the folds,
    continuing where the previous class stopped, so every fold holds each class in proportion
    (within one sample) and the fold sizes stay balanced. Indices are returned sorted.

    Raises:
        ConfigError: ``k < 2``, ``k`` larger than the number of samples, or (stratified) larger
            than the smallest class.
    """
    y = _check_labels(labels)
    n = len(y)
    if not isinstance(k, int) or isinstance(k, bool) or k < 2 or k > n:
        raise ConfigError(f"Expected `folds` to be an int in [2, {n}]. Received: folds={k!r}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=np.int64)
    if stratified:
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < k:
            small = classes[counts.argmin()]
            raise ConfigError(
                f"Expected every class to have at least folds={k} samples for stratified folds. "
                f"Received: class {small} has {counts.min()}"
            )
        start = 0
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            fold_of[idx] = (start + np.arange(len(idx))) % k
            start = (start + len(idx)) % k
    else:
        perm = rng.permutation(n)
        for f, part in enumerate(np.array_split(perm, k)):
            fold_of[part] = f
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def holdout_indices(
    labels: np.ndarray, fraction: float, seed: int = 0, stratified: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, val_indices)`` with ``round(fraction * n)`` samples held out.

    Stratified: each class gives ``round(fraction * class_count)`` samples (seeded choice).
    ``fraction == 0`` holds nothing out. Indices are returned sorted.
    """
    y = _check_labels(labels)
    if not 0 <= fraction < 1:
        raise ConfigError(f"Expected `val_fraction` in [0, 1). Received: {fraction!r}")
    rng = np.random.default_rng(seed)
    if fraction == 0:
        return np.arange(len(y)), np.arange(0)
    if stratified:
        val = np.concatenate(
            [
                rng.permutation(idx)[: round(fraction * len(idx))]
                for idx in (np.flatnonzero(y == c) for c in np.unique(y))
            ]
        )
    else:
        val = rng.permutation(len(y))[: round(fraction * len(y))]
    mask = np.zeros(len(y), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
