"""The synthetic dataset: any shape, seeded, always labelled synthetic."""

from __future__ import annotations

import numpy as np

from dlbench import datasets


def test_synthetic_is_labelled_and_reproducible() -> None:
    ds = datasets.load("synthetic", shape=(2, 5, 5), num_classes=7, num_samples=20, seed=3)
    assert ds.info.synthetic and "synthetic" in ds.info.source
    a = ds.get_batch([2, 9])
    b = ds.get_batch([9])
    np.testing.assert_array_equal(a.inputs[1], b.inputs[0])
    assert a.inputs.shape == (2, 2, 5, 5) and a.inputs.dtype == np.float32
    assert ((a.targets >= 0) & (a.targets < 7)).all()
    other = datasets.load("synthetic", split="train", shape=(2, 5, 5), num_samples=20, seed=3)
    assert not np.array_equal(other.get_batch([2]).inputs, a.inputs[:1])
    reg = datasets.load("synthetic", num_classes=0, num_samples=4)
    assert reg.info.task == "regression" and reg.get_batch([0]).targets.dtype == np.float32
