"""``dlbench run --via-onnx``: each source framework's export timed in ONNX Runtime beside the
native runs, parity against the same numpy reference, failures confined to their rows."""

from __future__ import annotations

import json

import pytest
from export_helpers import FAST, need

import dlbench
from dlbench.errors import ConfigError
from dlbench.execution.config import BenchmarkConfig


def test_config_via_onnx_rows():
    cfg = BenchmarkConfig(backends=["torch", "numpy", "jax"], via_onnx=True)
    assert cfg.resolved_backends() == [
        "torch",
        "numpy",
        "jax",
        "torch>onnxruntime",
        "jax>onnxruntime",
    ]
    assert {c.backend for c in cfg.cells()} >= {"torch>onnxruntime", "jax>onnxruntime"}
    # listed explicitly, and onnxruntime's options apply to those rows
    cfg = BenchmarkConfig(
        backends=["tensorflow>onnxruntime"],
        backend_options={"onnxruntime": {"graph_optimization_level": "basic"}},
    )
    assert cfg.resolved_backends() == ["tensorflow>onnxruntime"]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"via_onnx": "yes"}, "via_onnx` to be true or false"),
        ({"backends": ["mxnet>onnxruntime"]}, "via-ONNX backend like"),
        ({"backends": ["torch>tensorrt"]}, "via-ONNX backend like"),
    ],
)
def test_config_via_onnx_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        BenchmarkConfig(**kw)


def test_config_via_onnx_needs_a_source():
    with pytest.raises(ConfigError, match="at least one of"):
        BenchmarkConfig(backends=["numpy", "onnxruntime"], via_onnx=True).cells()


def _check_run(doc, backends, scenarios):
    for b in backends:
        info = doc["backends"][b]["cpu"]
        assert info["status"] == "ok" and info["parity"]["ok"], (b, info)
        cells = [c for c in doc["cells"] if c["backend"] == b]
        assert {c["scenario"] for c in cells} == set(scenarios)
        assert all(c["status"] == "ok" for c in cells)
    acc = {c["metrics"]["accuracy"] for c in doc["cells"] if c["scenario"] == "accuracy"}
    assert len(acc) == 1  # the same model everywhere, native or via ONNX


def test_run_via_onnx_end_to_end(tmp_path, run_cli):
    need("torch")
    r = run_cli(
        "run", "--model", "mlp", "--backends", "torch", "--via-onnx",
        "--scenario", "latency,accuracy", "--min-iters", "3", "--min-time", "0",
        "--max-time", "1", "--out", "r.json", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    _check_run(doc, ["torch", "torch>onnxruntime"], ["latency", "accuracy"])
    via = doc["backends"]["torch>onnxruntime"]["cpu"]
    assert via["export"]["exporter"] == "dynamo" and via["export"]["parity"]["ok"]
    assert via["export"]["opset"] == 18
    assert via["settings"]["via_onnx"]["source"] == "torch"
    assert via["settings"]["backend"] == "onnxruntime"
    assert "torch>onnxruntime" in r.stdout


@pytest.mark.slow
def test_run_via_onnx_every_source(tmp_path):
    for source in ("torch", "tensorflow", "jax"):
        need(source)
    doc = dlbench.run(
        {
            "model": "digits_cnn",
            "backends": ["torch", "tensorflow", "jax", "onnxruntime"],
            "via_onnx": True,
            "scenarios": ["latency", "throughput", "accuracy"],
            "stop_rule": FAST,
        },
        out=tmp_path / "r.json",
    )
    backends = ["torch", "tensorflow", "jax", "onnxruntime"]
    _check_run(doc, [*backends, *(f"{b}>onnxruntime" for b in backends[:3])],
               ["latency", "throughput", "accuracy"])  # fmt: skip


def test_run_export_failure_fails_only_its_rows(tmp_path, monkeypatch):
    from dlbench.execution import runner

    calls = []

    def broken(config, source, spec_path, workdir, env):
        calls.append(source)
        return {"ok": False, "error": f"ONNX export from {source} failed: boom", "report": None}

    monkeypatch.setattr(runner, "export_onnx", broken)
    monkeypatch.setattr(
        "dlbench.export.requirements.missing_message", lambda source, exporter=None: None
    )
    doc = dlbench.run(
        {
            "model": "mlp",
            "backends": ["numpy", "torch>onnxruntime"],
            "scenarios": ["latency"],
            "stop_rule": FAST,
        },
        out=tmp_path / "r.json",
    )
    assert calls == ["torch"]
    by = {c["backend"]: c for c in doc["cells"]}
    assert by["numpy"]["status"] == "ok"
    assert by["torch>onnxruntime"]["status"] == "failed"
    assert "export from torch failed: boom" in by["torch>onnxruntime"]["error"]
    assert doc["backends"]["torch>onnxruntime"]["cpu"]["status"] == "failed"


def test_run_export_missing_exporter(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "dlbench.export.requirements.missing",
        lambda source, exporter=None: ["tf2onnx"] if source == "tensorflow" else [],
    )
    doc = dlbench.run(
        {
            "model": "mlp",
            "backends": ["numpy", "tensorflow>onnxruntime"],
            "scenarios": ["latency"],
            "stop_rule": FAST,
        }
    )
    bad = [c for c in doc["cells"] if c["backend"] == "tensorflow>onnxruntime"]
    assert bad and all(c["status"] == "failed" for c in bad)
    assert "pip install 'dlbench[export]'" in bad[0]["error"]
