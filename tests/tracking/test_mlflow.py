"""MLflow: a run is written to a local file store and read back."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")


def test_log_run_and_read_back(tmp_path, monkeypatch, doc, result_file):
    from mlflow.tracking import MlflowClient

    from dlbench.adapters.tracking.mlflow import log_run

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    info = log_run(doc, result_file, tracking_uri=uri, experiment="dlbench-test")
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("dlbench-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 + 3  # the benchmark and one child per backend
    parent = client.get_run(info["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["model"] == "mlp"
    assert parent.data.params["timing_mode"] == "compute"
    assert parent.data.params["model_fingerprint"] == "f1ngerpr1nt"
    median = doc["cells"][0]["timing"]["stats"]["median"]
    assert parent.data.metrics["numpy/cpu/latency/bs1/median_s"] == pytest.approx(median)
    assert parent.data.metrics["torch/cpu/accuracy/bs256/accuracy"] == pytest.approx(0.9644)
    assert [a.path for a in client.list_artifacts(info["run_id"])] == ["results.json"]
    children = {
        client.get_run(r).data.tags["mlflow.runName"]: client.get_run(r)
        for r in info["child_run_ids"]
    }
    assert set(children) == {"numpy/cpu", "torch/cpu", "onnxruntime/cpu"}
    torch_run = children["torch/cpu"]
    assert torch_run.data.tags["mlflow.parentRunId"] == info["run_id"]
    assert torch_run.data.params["version.torch"] == "2.13.0+cpu"
    assert "throughput/bs32/throughput_per_s" in torch_run.data.metrics


def test_default_store_is_local_mlruns(tmp_path, monkeypatch, doc):
    from mlflow.tracking import MlflowClient

    from dlbench.adapters.tracking import log_all

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = log_all(doc, None, mlflow_uri="")
    assert out["mlflow"]["tracking_uri"] == (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=out["mlflow"]["tracking_uri"])
    assert client.get_run(out["mlflow"]["run_id"]).data.params["dataset"] == "digits"
