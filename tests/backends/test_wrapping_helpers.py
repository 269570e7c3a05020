"""Shared helpers of every backend's ``wrap``: argument check, host batch layout, messages."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dlbench.backends.common.wrapping import check_wrap_kwargs, describe, host_batch
from dlbench.errors import BackendError


def test_unknown_wrap_arguments_name_the_accepted_ones() -> None:
    check_wrap_kwargs("torch", {}, "device, name")
    with pytest.raises(BackendError, match=r"Unknown argument\(s\) \['a', 'b'\] for torch wrap. "):
        check_wrap_kwargs("torch", {"b": 1, "a": 2}, "device, name")


def test_host_batch_follows_the_models_layout_and_shape() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    nchw = SimpleNamespace(input_shape=(3, 4, 5), layout="NCHW", name="m")
    got = host_batch(nchw, x)
    assert got.dtype == np.float32 and got.shape == (2, 3, 4, 5)
    nhwc = SimpleNamespace(input_shape=(3, 4, 5), layout="NHWC", name="m")
    got = host_batch(nhwc, x)
    assert got.shape == (2, 4, 5, 3) and got.flags.c_contiguous
    assert got[1, 2, 3, 0] == x[1, 0, 2, 3]
    flat = SimpleNamespace(input_shape=(6,), layout="NHWC", name="m")
    assert host_batch(flat, np.zeros((2, 6))).shape == (2, 6)  # only 4-D batches move
    wrong = SimpleNamespace(input_shape=(3, 4, 4), layout="NCHW", name="m", backend=nchw)
    nchw.name = "jax"
    with pytest.raises(BackendError, match="wrapped for inputs of per-sample shape"):
        host_batch(wrong, x)


def test_describe_keeps_the_type_and_first_line() -> None:
    assert describe(ValueError("bad\nmore")) == "ValueError: bad"
    assert describe(RuntimeError()) == "RuntimeError: "
