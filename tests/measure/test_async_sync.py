"""The timer waits for asynchronous devices (issue 24): on a CPU, with real time.

A GPU framework returns from ``forward`` before the result exists; only ``sync`` waits for it.
Counting that ``sync`` was called is not enough (a sync that does nothing is called too): here a
fake asynchronous Model finishes its work on another thread ``DELAY`` seconds after ``forward``
returns, and its ``sync`` blocks until then, so every timed call must take at least ``DELAY``.
The same is checked for torch's CUDA path by standing in for ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dlbench.execution.measure import time_model

DELAY = 0.004  # seconds the fake device needs after forward() returns
RULE = {
    "warmup_min": 1,
    "warmup_max": 2,
    "warmup_min_time": 0.0,
    "min_iters": 4,
    "max_iters": 4,
    "min_time": 0.0,
}


class AsyncModel:
    """forward() launches the work and returns at once; the result is ready DELAY s later."""

    device = "cuda:0"

    def __init__(self) -> None:
        self.pending: threading.Event | None = None
        self.synced_ready: list[bool] = []

    def to_device(self, batch):
        return np.asarray(batch)

    def forward(self, x):
        done = threading.Event()
        threading.Timer(DELAY, done.set).start()
        self.pending = done
        return x

    def sync(self, y) -> None:
        assert self.pending is not None
        self.pending.wait()
        self.synced_ready.append(self.pending.is_set())

    def to_numpy(self, y):
        assert self.pending is not None and self.pending.is_set(), (
            "read before the result was ready"
        )
        return np.asarray(y)

    def weight_bytes(self) -> int:
        return 0


@pytest.mark.parametrize("mode", ["compute", "end_to_end"])
def test_timer_waits_for_the_asynchronous_result(mode) -> None:
    model = AsyncModel()
    t = time_model(model, np.zeros((2, 3), np.float32), mode, **RULE)
    assert t.n == 4
    assert np.all(t.samples >= DELAY), t.samples  # each call includes the device's work
    assert t.first_call >= DELAY
    assert model.synced_ready and all(model.synced_ready)


def test_torch_sync_on_cuda_really_synchronizes(monkeypatch) -> None:
    """torch's sync on a CUDA device must call torch.cuda.synchronize (here: a stand-in that
    takes DELAY, as a GPU finishing queued kernels would), inside the timed region."""
    torch = pytest.importorskip("torch")
    import dlbench

    spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    model = dlbench.get_backend("torch").build(spec, "cpu")
    calls = []

    def synchronize(device=None):
        calls.append(device)
        threading.Event().wait(DELAY)

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    model.torch_device = torch.device("cuda", 0)  # as if on a GPU; the module stays on the CPU
    model.to_device = lambda batch: torch.from_numpy(np.asarray(batch, np.float32))
    t = time_model(model, np.zeros((2, 1, 8, 8), np.float32), "compute", **RULE)
    assert calls and all(d == torch.device("cuda", 0) for d in calls)
    assert len(calls) == t.n + len(t.warmup_samples)
    assert np.all(t.samples >= DELAY), t.samples


def test_torch_sync_on_cpu_does_not_touch_cuda(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    import dlbench

    spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    model = dlbench.get_backend("torch").build(spec, "cpu")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: pytest.fail("synchronized a CPU"))
    model.sync(model.forward(model.to_device(np.zeros((1, 1, 8, 8), np.float32))))
