"""Issue 23: JAX weights arranged once, at build time, in the layout XLA:CPU's kernels read."""

from __future__ import annotations

import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import dlbench  # noqa: E402
from dlbench.backends.jax.backend import make_apply  # noqa: E402


def _weight_transposes(apply, params, x) -> int:
    """Instructions of the compiled program that transpose a weight (an entry parameter named
    after a ``weight`` leaf), alone or fused with a copy: work done again on every call."""
    hlo = jax.jit(apply).lower(params, x).compile().as_text()
    pattern = re.compile(r"%\S*transpose\S* = [^\n]*?\((%params\S*weight\S*)\)")
    return len(pattern.findall(hlo))


@pytest.mark.parametrize(
    "name",
    ["resnet20", pytest.param("mobilenet_v2", marks=pytest.mark.slow), "vit_tiny", "lstm"],
)
def test_arranged_weights_give_identical_outputs(name):
    spec = dlbench.zoo.get(name)
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    outs = []  # conv, dense, attention and LSTM weights arranged; the arithmetic unchanged
    for arranged in (False, True):
        apply, params = make_apply(spec, arranged=arranged)
        outs.append(np.asarray(jax.jit(apply)(params, x)))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_arranged_convolution_weights_are_not_transposed_per_call():
    spec = dlbench.zoo.get("resnet20")
    x = np.zeros((2, 3, 32, 32), np.float32)
    canonical, arranged = make_apply(spec), make_apply(spec, arranged=True)
    # the check can fail: the canonical (OIHW) program transposes its conv weights every call
    assert _weight_transposes(*canonical, x) == 19  # every conv of resnet20
    assert _weight_transposes(*arranged, x) == 0
    w = arranged[1]["stem.conv"]["weight"]
    assert w.shape == (3, 3, 3, 16) and w.flags.c_contiguous  # HWIO, stored once


def test_the_backend_builds_arranged_weights_and_matches_the_reference():
    spec = dlbench.zoo.get("resnet20")
    model = dlbench.get_backend("jax").build(spec)
    assert model.params["layer1.0.conv1"]["weight"].shape == (3, 3, 16, 16)
    assert model.params["head"]["weight"].shape == (64, 10)  # dense: (in, out)
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    want = dlbench.get_backend("numpy").build(spec).predict(x)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-4)
