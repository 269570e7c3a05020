import numpy as np
import pytest
from sklearn.datasets import load_digits

import dlbench
from dlbench.errors import ConfigError


def test_digits_split_is_the_documented_cut():
    ref = load_digits()
    train = dlbench.data.load("digits", split="train")
    test = dlbench.data.load("digits", split="test")
    assert (len(train), len(test)) == (1437, 360)
    x_tr, y_tr = train.arrays()
    x_te, y_te = test.arrays()
    np.testing.assert_array_equal(y_tr, ref.target[:1437])
    np.testing.assert_array_equal(y_te, ref.target[1437:])
    np.testing.assert_array_equal(x_te[:, 0], (ref.images[1437:] / 16.0).astype(np.float32))
    assert x_te.dtype == np.float32 and x_te.shape == (360, 1, 8, 8)
    assert 0.0 <= x_te.min() and x_te.max() <= 1.0
    assert test.info.num_classes == 10 and not test.info.synthetic


def test_digits_batches_cover_the_split_in_order():
    ds = dlbench.data.load("digits")
    got = np.concatenate([b.targets for b in ds.batches(100)])
    np.testing.assert_array_equal(got, ds.arrays()[1])
    assert [len(b) for b in ds.batches(100, drop_last=True)] == [100, 100, 100]


def test_bad_split_and_batch_size():
    with pytest.raises(ConfigError, match="Expected digits split in"):
        dlbench.data.load("digits", split="validation")
    with pytest.raises(
        ConfigError, match="Expected `batch_size` to be a positive int. Received: batch_size=0"
    ):
        next(dlbench.data.load("digits").batches(0))
