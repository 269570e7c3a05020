"""TensorBoard: event files are written and read back; a missing extra is named."""

from __future__ import annotations

import sys
import types

import pytest

from dlbench.errors import MissingFrameworkError


@pytest.fixture
def accumulator(monkeypatch):
    pytest.importorskip("tensorboard")
    # Read back with TensorBoard's stub TF API: importing real TensorFlow would cost seconds.
    if "tensorflow" not in sys.modules:
        monkeypatch.setitem(sys.modules, "tensorboard.compat.notf", types.ModuleType("notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def load(path):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
        acc.Reload()
        return acc

    return load


def test_write_events_and_read_back(tmp_path, doc, accumulator):
    from dlbench.adapters.tracking.tensorboard import write_events

    paths = write_events(doc, tmp_path / "tb")
    assert sorted(p.parent.name for p in paths) == ["numpy_cpu", "onnxruntime_cpu", "torch_cpu"]
    acc = accumulator(tmp_path / "tb" / "torch_cpu")
    tags = acc.Tags()
    assert {"latency/median_ms", "latency/trace_ms", "throughput/samples_per_s"} <= set(
        tags["scalars"]
    )
    assert "latency/samples_ms" in tags["histograms"]
    cells = {c["id"]: c for c in doc["cells"]}
    lat = cells["torch/cpu/latency/bs1"]["timing"]
    median = acc.Scalars("latency/median_ms")[0].value
    assert median == pytest.approx(lat["stats"]["median"] * 1e3, rel=1e-6)
    tput = {e.step: e.value for e in acc.Scalars("throughput/samples_per_s")}
    assert sorted(tput) == [1, 8, 32]  # step = batch size
    assert tput[32] == pytest.approx(cells["torch/cpu/throughput/bs32"]["timing"]["throughput"])
    hist = acc.Histograms("latency/samples_ms")[0].histogram_value
    assert hist.num == len(lat["samples_s"])
    assert hist.min == pytest.approx(min(lat["samples_s"]) * 1e3)
    assert len(acc.Scalars("latency/trace_ms")) == len(lat["samples_s"])


def test_writing_events_imports_no_framework(tmp_path, doc):
    pytest.importorskip("tensorboard")
    import subprocess

    from dlbench.execution import results

    path = tmp_path / "r.json"
    results.write_atomic(path, doc)
    code = (
        "import sys, json\nfrom dlbench.adapters.tracking.tensorboard import write_events\n"
        f"write_events(json.load(open({str(path)!r})), {str(tmp_path / 'tb')!r})\n"
        "print(' '.join(m for m in ('tensorflow', 'torch', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_missing_extra_is_named(monkeypatch):
    import importlib.util

    from dlbench.adapters import tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: None if n in ("mlflow", "tensorboard") else real(n, *a),
    )
    with pytest.raises(MissingFrameworkError, match=r"pip install 'dlbench\[mlflow\]'"):
        tracking.check("", None)
    with pytest.raises(MissingFrameworkError, match=r"pip install 'dlbench\[tensorboard\]'"):
        tracking.check(None, "tb")
    tracking.check(None, None)
