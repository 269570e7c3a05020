"""``dlbench run --mlflow URI --tensorboard DIR`` logs the finished run to both."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_run_logs_to_mlflow_and_tensorboard(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "dlbench.cli", "run", "--backends", "numpy", "--scenario",
         "latency", "--min-time", "0.05", "--min-iters", "20", "--out", str(tmp_path / "r.json"),
         "-q", "--mlflow", uri, "--tensorboard", str(tmp_path / "tb")],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env,
    )  # fmt: skip
    # a crash of the command under test is a failure, never a skip
    assert proc.returncode == 0 and (tmp_path / "r.json").exists(), proc.stderr[-2000:]
    assert "MLflow: run" in proc.stdout and "TensorBoard:" in proc.stdout
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dlbench").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert "numpy/cpu/latency/bs1/median_s" in parent.data.metrics
    assert list((tmp_path / "tb" / "numpy_cpu").glob("events.out.tfevents.*"))


def test_run_refuses_before_measuring_when_an_extra_is_missing(tmp_path):
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'mlflow' else real(n, *a)\n"
        "from dlbench.cli import main\n"
        "sys.exit(main(['run', '--backends', 'numpy', '--mlflow', '--out', 'r.json']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "pip install 'dlbench[mlflow]'" in proc.stderr
    assert not (tmp_path / "r.json").exists()
