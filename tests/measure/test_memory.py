"""dlbench.execution.memory: the cell's memory block, GPU readers through fake framework modules."""

from __future__ import annotations

import sys
import types

import pytest
from measure_fakes import FakeClock, FakeModel

from dlbench.execution import memory


def test_snapshot_cpu_model():
    model = FakeModel(FakeClock())
    snap = memory.snapshot(model)
    assert set(snap) == {"peak_rss_bytes", "rss_bytes", "weight_bytes"}
    assert snap["peak_rss_bytes"] > 10_000_000  # a Python process with NumPy
    assert snap["weight_bytes"] == 123
    assert memory.gpu_memory(model) == {}


def test_snapshot_survives_a_model_without_weight_bytes():
    class Bare:
        device = "cpu"

    assert memory.snapshot(Bare())["weight_bytes"] is None


def _fake_torch(calls):
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        max_memory_allocated=lambda i: 1000 + i,
        max_memory_reserved=lambda i: 2000,
        memory_allocated=lambda i: 500,
        reset_peak_memory_stats=lambda i: calls.append(("reset", i)),
        empty_cache=lambda: calls.append(("empty",)),
    )
    return types.SimpleNamespace(cuda=cuda)


class _HookBackend:
    """A backend whose memory hooks return what a torch backend's would."""

    name = "torch"

    def __init__(self, calls, broken=False):
        self.calls, self.broken = calls, broken

    def memory_stats(self, index):
        if self.broken:
            raise RuntimeError("driver gone")
        return {
            "torch": {
                "max_allocated_bytes": 1000 + index,
                "max_reserved_bytes": 2000,
                "allocated_bytes": 500,
            }
        }

    def reset_peaks(self, index):
        self.calls.append(("reset", index))

    def release_memory(self):
        self.calls.append(("empty",))


def test_gpu_readers_are_the_backends_hooks(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: no NVML block
    model = FakeModel(FakeClock())
    model.device = "cuda:1"
    model.backend = _HookBackend(calls)
    snap = memory.snapshot(model)
    assert snap["gpu"] == {
        "device_index": 1,
        "torch": {"max_allocated_bytes": 1001, "max_reserved_bytes": 2000, "allocated_bytes": 500},
    }
    memory.reset_peaks(model)
    memory.free_gpu_cache(model)
    assert ("reset", 1) in calls and ("empty",) in calls


def test_a_model_without_hooks_reports_only_the_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    model = FakeModel(FakeClock())
    model.device = "cuda"
    assert memory.gpu_memory(model) == {"device_index": 0}
    memory.reset_peaks(model)  # no hook: nothing to do, no error
    memory.free_gpu_cache(model)


def test_a_failing_reader_is_recorded_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    model = FakeModel(FakeClock())
    model.device = "cuda"
    model.backend = _HookBackend([], broken=True)
    gpu = memory.gpu_memory(model)
    assert gpu["torch"] == {"error": "RuntimeError: driver gone"}


def test_torch_reader(monkeypatch):
    pytest.importorskip("torch")
    from dlbench.backends.torch import backend as tb

    calls = []
    monkeypatch.setattr(tb, "torch", _fake_torch(calls))
    b = object.__new__(tb.TorchBackend)
    assert b.memory_stats(1) == {
        "torch": {"max_allocated_bytes": 1001, "max_reserved_bytes": 2000, "allocated_bytes": 500}
    }
    b.reset_peaks(1)
    b.release_memory()
    assert calls == [("reset", 1), ("empty",)]


def test_jax_reader(monkeypatch):
    pytest.importorskip("jax")
    from dlbench.backends.jax import backend as jb

    dev = types.SimpleNamespace(
        platform="gpu", memory_stats=lambda: {"peak_bytes_in_use": 7, "bytes_in_use": 3}
    )
    monkeypatch.setattr(jb, "jax", types.SimpleNamespace(devices=lambda: [dev]))
    b = object.__new__(jb.JaxBackend)
    assert b.memory_stats(0) == {"jax": {"peak_bytes_in_use": 7, "bytes_in_use": 3}}
    assert b.memory_stats(1) == {}


def test_tf_reader(monkeypatch):
    pytest.importorskip("tensorflow")
    from dlbench.backends.tensorflow import backend as tfb

    exp = types.SimpleNamespace(get_memory_info=lambda d: {"peak": 9, "current": 4})
    config = types.SimpleNamespace(list_logical_devices=lambda kind: ["GPU:0"], experimental=exp)
    monkeypatch.setattr(tfb, "tf", types.SimpleNamespace(config=config))
    b = object.__new__(tfb.TensorFlowBackend)
    assert b.memory_stats(0) == {"tensorflow": {"peak_bytes": 9, "current_bytes": 4}}
