"""``dlbench export`` through a subprocess, and ``python -m dlbench.export``'s JSON on failure."""

from __future__ import annotations

import json
import subprocess
import sys

from export_helpers import need


def test_cli_export_torch(run_cli, tmp_path):
    need("torch")
    r = run_cli(
        "export", "--model", "lenet5", "--from", "torch", "--out", "l.onnx", "--json", "r.json",
        "--input-shape", "3,28,28", "--num-classes", "5",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "ONNX export: lenet5 from torch" in r.stdout and "parity" in r.stdout
    assert "Conv" in r.stdout and " ok " in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parity"]["ok"] and report["input_shape"] == [3, 28, 28]
    assert report["summary"]["outputs"][0]["shape"] == ["batch", 5]
    assert (tmp_path / "l.onnx").exists()


def test_cli_export_options(run_cli, tmp_path):
    need("torch", "torchscript")
    r = run_cli(
        "export", "--model", "mlp", "--exporter", "torchscript", "--opset", "17",
        "--no-dynamic-batch", "--batch-size", "3", "--input-name", "pixels",
        "--output-names", "logits", "--json", "r.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exporter"] == "torchscript" and report["opset"] == 17
    assert report["summary"]["inputs"][0] == {
        "name": "pixels",
        "shape": [3, 1, 8, 8],
        "dtype": "float32",
    }
    assert (tmp_path / "mlp-torch.onnx").exists()  # the default file name


def test_cli_export_exit_codes(run_cli, tmp_path):
    need("torch")
    r = run_cli("export", "--model", "mlp", "--from", "mxnet")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("export", "--model", "no_such_model")
    assert r.returncode == 2 and "no_such_model" in r.stderr
    tight = ("--model", "lenet5", "--exporter", "torchscript", "--tolerance", "1e-15")
    r = run_cli("export", *tight, "--out", "m.onnx")
    assert r.returncode == 1 and "PARITY FAILED" in r.stdout
    r = run_cli("export", *tight, "--force", "--out", "m.onnx")
    assert r.returncode == 0 and "kept because of --force" in r.stdout


def test_module_worker_writes_error_json(tmp_path):
    need("jax")
    out = tmp_path / "e.json"
    r = subprocess.run(
        [sys.executable, "-m", "dlbench.export", "--model", "mlp", "--from", "jax",
         "--opset", "17", "--json", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 1
    doc = json.loads(out.read_text())
    assert doc["ok"] is False and "opset 18 or later" in doc["error"]
