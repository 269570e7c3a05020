"""Batch order, the hold-out split and the k-fold splitter."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.errors import ConfigError
from dlbench.train import batch_indices, epoch_orders, holdout_indices, kfold_indices


def test_epoch_orders_are_seeded_permutations() -> None:
    a, b = epoch_orders(50, 3, seed=1), epoch_orders(50, 3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    for row in a:
        assert sorted(row.tolist()) == list(range(50))
    assert not np.array_equal(a, epoch_orders(50, 3, seed=2))


def test_batch_indices_drop_last() -> None:
    order = np.arange(10)
    assert [b.tolist() for b in batch_indices(order, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [len(b) for b in batch_indices(order, 4, drop_last=False)] == [4, 4, 2]
    with pytest.raises(ConfigError, match="batch_size"):
        batch_indices(order, 11)


def _labels(counts: list[int]) -> np.ndarray:
    return np.concatenate([np.full(c, i) for i, c in enumerate(counts)]).astype(np.int64)


@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_partitions(k, stratified) -> None:
    y = np.random.default_rng(0).permutation(_labels([30, 17, 23, 11]))
    folds = kfold_indices(y, k, seed=3, stratified=stratified)
    assert len(folds) == k
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(len(y)))  # every sample validated exactly once
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert len(tr) + len(va) == len(y)
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    if stratified:
        for c in np.unique(y):
            per_fold = [int((y[v] == c).sum()) for _, v in folds]
            assert max(per_fold) - min(per_fold) <= 1
    again = kfold_indices(y, k, seed=3, stratified=stratified)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_kfold_errors() -> None:
    y = _labels([5, 2])
    with pytest.raises(ConfigError, match=r"Expected `folds` to be an int in \[2, 7\]"):
        kfold_indices(y, 1)
    with pytest.raises(ConfigError, match="class 1 has 2"):
        kfold_indices(y, 3, stratified=True)
    assert len(kfold_indices(y, 3, stratified=False)) == 3


def test_holdout_stratified() -> None:
    y = _labels([40, 20, 20])
    tr, va = holdout_indices(y, 0.25, seed=0)
    assert [int((y[va] == c).sum()) for c in range(3)] == [10, 5, 5]
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(80))
    tr0, va0 = holdout_indices(y, 0.0)
    assert len(va0) == 0 and len(tr0) == 80
