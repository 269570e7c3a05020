"""The numpy reference out of the timed cells by default, a progress line that says what runs and
when it ends, a missing GPU refused before any worker (issue 22)."""

from __future__ import annotations

import pytest
from rich.console import Console

from dlbench.cli.console import _duration, progress_callback
from dlbench.errors import ConfigError
from dlbench.execution import environment
from dlbench.execution.config import REFERENCE_BACKEND, BenchmarkConfig


def test_reference_left_out_of_default_backends(monkeypatch):
    monkeypatch.setattr(
        "dlbench.model.backend.available_backends", lambda: ["numpy", "torch", "onnxruntime"]
    )
    assert BenchmarkConfig().resolved_backends() == ["torch", "onnxruntime"]
    with_ref = BenchmarkConfig(with_reference=True).resolved_backends()
    assert with_ref == ["numpy", "torch", "onnxruntime"]
    assert BenchmarkConfig(backends=["numpy"]).resolved_backends() == ["numpy"]  # asked for
    monkeypatch.setattr("dlbench.model.backend.available_backends", lambda: ["numpy"])
    assert BenchmarkConfig().resolved_backends() == [REFERENCE_BACKEND]  # nothing else: kept
    with pytest.raises(ConfigError, match="with_reference"):
        BenchmarkConfig(with_reference="yes")


def test_progress_shows_the_running_cell_and_an_eta():
    console = Console(record=True, width=120, force_terminal=True)
    with progress_callback(console) as on_event:
        on_event("plan", {"cells": ["a", "b", "c"], "todo": ["a", "b", "c"], "skipped": []})
        on_event("start", {"id": "torch/cpu/latency/bs1"})
        on_event("cell", {"id": "torch/cpu/latency/bs1", "status": "ok"})
        on_event("start", {"id": "torch/cpu/throughput/bs32"})
    text = console.export_text()
    assert "running torch/cpu/throughput/bs32" in text and "ETA ~" in text
    assert [_duration(s) for s in (5, 185, 3720)] == ["5s", "3m05s", "1h02m"]


def test_cuda_refused_before_any_worker(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(environment, "gpu_info", lambda: [])
    environment.check_devices(["cpu"])  # nothing to check
    with pytest.raises(ConfigError, match="no GPU found"):
        environment.check_devices(["cpu", "cuda"])
    monkeypatch.setattr(environment, "gpu_info", lambda: [{"index": 0, "name": "X"}])
    environment.check_devices(["cuda", "cuda:0"])
    with pytest.raises(ConfigError, match=r"1 GPU\(s\) visible"):
        environment.check_devices(["cuda:1"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES"):
        environment.check_devices(["cuda"])


def test_cli_cuda_without_gpu_is_a_usage_error(tmp_path, trust):
    if environment.gpu_info():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "r.json"
    proc = trust.run_cli("run", "--backends", "numpy", "--device", "cuda", "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "dlbench: error: Expected a CUDA device for --device cuda" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
