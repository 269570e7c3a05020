"""dlbench.execution.memory: the cell's memory block, GPU readers through fake framework modules."""

from __future__ import annotations

import sys
import types

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


def test_gpu_readers_use_only_loaded_frameworks(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(calls))
    for name in ("jax", "tensorflow", "pynvml"):
        monkeypatch.setitem(sys.modules, name, None)  # "not loaded" / import fails
    model = FakeModel(FakeClock())
    model.device = "cuda:1"
    snap = memory.snapshot(model)
    assert snap["gpu"] == {
        "device_index": 1,
        "torch": {"max_allocated_bytes": 1001, "max_reserved_bytes": 2000, "allocated_bytes": 500},
    }
    memory.reset_peaks(model)
    memory.free_gpu_cache()
    assert ("reset", 1) in calls and ("empty",) in calls


def test_a_failing_reader_is_recorded_not_raised(monkeypatch):
    def broken(index):
        raise RuntimeError("driver gone")

    monkeypatch.setitem(memory._GPU_READERS, "torch", broken)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    model = FakeModel(FakeClock())
    model.device = "cuda"
    gpu = memory.gpu_memory(model)
    assert gpu["torch"] == {"error": "RuntimeError: driver gone"}


def test_jax_and_tf_readers(monkeypatch):
    dev = types.SimpleNamespace(
        platform="gpu", memory_stats=lambda: {"peak_bytes_in_use": 7, "bytes_in_use": 3}
    )
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=lambda: [dev]))
    exp = types.SimpleNamespace(get_memory_info=lambda d: {"peak": 9, "current": 4})
    config = types.SimpleNamespace(list_logical_devices=lambda kind: ["GPU:0"], experimental=exp)
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(config=config))
    assert memory._jax_gpu(0) == {"peak_bytes_in_use": 7, "bytes_in_use": 3}
    assert memory._jax_gpu(1) is None
    assert memory._tf_gpu(0) == {"peak_bytes": 9, "current_bytes": 4}
