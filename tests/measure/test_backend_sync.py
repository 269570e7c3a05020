"""For every real backend: the sync is called inside the timed region, the input is prepared
outside it (compute mode), and end_to_end puts host-to-host inside it. Structural checks only.

Each backend's methods are wrapped to log their calls next to the clock reads; backends whose
framework is absent are skipped. On a CUDA machine the same checks run on the GPU (``gpu``).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import dlbench
from dlbench.execution.measure import time_model

BACKENDS = ["numpy", "torch", "jax", "onnxruntime", "tensorflow"]  # torch before tensorflow
TINY = {
    "warmup_min": 2,
    "warmup_max": 3,
    "warmup_min_time": 0.0,
    "min_iters": 3,
    "max_iters": 3,
    "min_time": 0.0,
}


def _build(name: str, device: str = "cpu"):
    if name not in dlbench.available_backends():
        pytest.skip(f"backend {name!r} is not installed")
    spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    return dlbench.get_backend(name).build(spec, device)


def _instrument(model):
    """Log to_device/forward/sync/to_numpy (D/F/S/N) and clock reads (T) in one list."""
    log: list[str] = []
    for attr, letter in (("to_device", "D"), ("forward", "F"), ("sync", "S"), ("to_numpy", "N")):
        method = getattr(model, attr)

        def wrapped(*args, _m=method, _l=letter, **kw):
            log.append(_l)
            return _m(*args, **kw)

        setattr(model, attr, wrapped)

    def clock():
        log.append("T")
        return time.perf_counter_ns()

    return log, clock


def _check(model):
    log, clock = _instrument(model)
    batch = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    t = time_model(model, batch, "compute", clock=clock, **TINY)
    s = "".join(log)
    assert re.fullmatch(r"(TT)+D(TFST)+T(TFST)+", s), s
    assert t.n == 3 and np.all(t.samples > 0)
    log.clear()
    t = time_model(model, batch, "end_to_end", clock=clock, **TINY)
    s = "".join(log)
    assert re.fullmatch(r"(TT)+(TDFSNT)+T(TDFSNT)+", s), s
    assert t.n == 3


@pytest.mark.parametrize("name", BACKENDS)
def test_sync_inside_timed_region_cpu(name):
    _check(_build(name))


@pytest.mark.gpu
@pytest.mark.parametrize("name", BACKENDS[1:])
def test_sync_inside_timed_region_gpu(name):
    if name not in dlbench.available_backends():
        pytest.skip(f"backend {name!r} is not installed")
    backend = dlbench.get_backend(name)
    if not any(d.startswith("cuda") for d in backend.devices()):
        pytest.skip("no CUDA device for this backend")
    _check(_build(name, "cuda"))


def test_jax_sync_blocks_until_ready():
    """JAX dispatches asynchronously: the backend's sync must block until the result is ready,
    on every warm-up and measured call (an array's own ``block_until_ready``; a pytree of them
    through ``jax.block_until_ready``)."""
    jax = pytest.importorskip("jax")
    model = _build("jax")
    waited = []

    class Pending:
        """The forward's array, recording that sync waited on it."""

        def __init__(self, y):
            self.y = y

        def block_until_ready(self):
            waited.append(self.y)
            return self.y.block_until_ready()

    real_forward = model.forward
    model.forward = lambda x: Pending(real_forward(x))
    time_model(model, np.zeros((2, 1, 8, 8), np.float32), **TINY)
    assert len(waited) == 3 + 3  # every warm-up call (3, the cap) and measured call (3)

    # a tree of arrays (a detector's several outputs) goes through jax.block_until_ready
    import dlbench.backends.jax.backend as jb

    trees = []
    real = jax.block_until_ready
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(jb.jax, "block_until_ready", lambda y: trees.append(y) or real(y))
        y = real_forward(model.to_device(np.zeros((2, 1, 8, 8), np.float32)))
        model.sync({"a": y, "b": y})
    finally:
        mp.undo()
    assert len(trees) == 1 and set(trees[0]) == {"a", "b"}
