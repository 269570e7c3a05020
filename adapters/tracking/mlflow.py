"""Log a result document to MLflow: params, metrics and the result file as an artifact.

One parent run per benchmark holds the shared settings as params, every number as a metric named
``backend/device/scenario/bsN/stat`` and the result JSON as an artifact; one nested child run per
backend and device holds that backend's versions and settings as params and its numbers as
``scenario/bsN/stat``, so MLflow's run comparison view lines the backends up side by side.

The default store is a local folder, ``./mlruns`` (MLflow 3 keeps its file store in maintenance
mode behind ``MLFLOW_ALLOW_FILE_STORE``; dlbench sets it for ``file:`` stores it was asked to use).

Example:
    >>> from dlbench.adapters.tracking.mlflow import log_run
    >>> info = log_run(doc, "results.json", tracking_uri="file:/tmp/mlruns")  # doctest: +SKIP
    >>> info["run_id"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dlbench.adapters.tracking import require

#: ``timing.stats`` entries logged as metrics (seconds), with their metric suffix.
TIMING_STATS = {
    "median": "median_s",
    "p90": "p90_s",
    "p99": "p99_s",
    "mean": "mean_s",
    "ci95_low": "ci95_low_s",
    "ci95_high": "ci95_high_s",
}
MAX_PARAM_CHARS = 500


def default_uri() -> str:
    """``file:`` URI of ``./mlruns`` in the current folder."""
    return Path("mlruns").resolve().as_uri()


def _resolve_uri(uri: str | None) -> str:
    """A URI (``http://``, ``file:``, ``sqlite:///``, ``databricks``...) as given; a folder as
    its ``file:`` URI; nothing as :func:`default_uri`."""
    if not uri:
        return default_uri()
    if ":" in uri or uri == "databricks":
        return uri
    return Path(uri).resolve().as_uri()


def cell_metrics(cell: dict[str, Any]) -> dict[str, float]:
    """The numbers of one cell: timing statistics, throughput, quality metrics, peak memory."""
    out: dict[str, float] = {}
    if cell.get("status") == "failed":
        return out
    timing = cell.get("timing") or {}
    stats = timing.get("stats") or {}
    for key, name in TIMING_STATS.items():
        if stats.get(key) is not None:
            out[name] = float(stats[key])
    if timing.get("throughput") is not None:
        out["throughput_per_s"] = float(timing["throughput"])
    for key, value in (cell.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    mem = (cell.get("memory") or {}).get("peak_rss_bytes")
    if mem is not None:
        out["peak_rss_bytes"] = float(mem)
    return out


def _param(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def run_params(doc: dict[str, Any]) -> dict[str, str]:
    cfg = doc.get("config") or {}
    env = doc.get("environment") or {}
    model = doc.get("model") or {}
    params = {
        k: cfg.get(k)
        for k in (
            "model",
            "dataset",
            "split",
            "backends",
            "devices",
            "scenarios",
            "batch_sizes",
            "precision",
            "intra_op_threads",
            "inter_op_threads",
            "timing_mode",
            "stop_rule",
            "seed",
        )
    }
    params["model_fingerprint"] = model.get("fingerprint")
    params["model_params"] = (model.get("stats") or {}).get("params")
    params["cpu_model"] = (env.get("cpu") or {}).get("model")
    params["gpus"] = [g.get("name") for g in env.get("gpus") or []]
    params["dlbench_version"] = (env.get("dlbench") or {}).get("version")
    params["dlbench_git_commit"] = (env.get("dlbench") or {}).get("git_commit")
    params["dlbench_run_id"] = doc.get("run_id")
    return {k: _param(v) for k, v in params.items()}


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def log_run(
    doc: dict[str, Any],
    result_path: str | os.PathLike[str] | None = None,
    *,
    tracking_uri: str | None = None,
    experiment: str = "dlbench",
    run_name: str | None = None,
) -> dict[str, Any]:
    """Log ``doc`` to MLflow and return ``{"run_id", "child_run_ids", "experiment",
    "experiment_id", "tracking_uri"}``.

    Args:
        doc: A result document.
        result_path: The result file to attach as an artifact (the document is written to a
            temporary file when None).
        tracking_uri: An MLflow tracking URI or a folder; default ``./mlruns``.
        experiment: Experiment name (created when missing).
        run_name: Default ``<model>-<dataset>-<run id prefix>``.
    """
    require("mlflow")
    uri = _resolve_uri(tracking_uri)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    cfg = doc.get("config") or {}
    name = run_name or f"{cfg.get('model')}-{cfg.get('dataset')}-{str(doc.get('run_id'))[:8]}"
    tags = {"dlbench.run_id": str(doc.get("run_id")), "dlbench.status": str(doc.get("status"))}
    now_ms = int(time.time() * 1000)

    def log(run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
        for chunk in _chunks([Param(k, v) for k, v in params.items()], 100):
            client.log_batch(run_id, params=chunk)
        ms = [Metric(k, v, now_ms, 0) for k, v in metrics.items()]
        for chunk in _chunks(ms, 1000):
            client.log_batch(run_id, metrics=chunk)

    parent = client.create_run(exp_id, run_name=name, tags=tags)
    parent_id = parent.info.run_id
    children = []
    try:
        all_metrics: dict[str, float] = {}
        per_backend: dict[tuple[str, str], dict[str, float]] = {}
        for cell in doc.get("cells") or []:
            prefix = f"{cell['scenario']}/bs{cell['batch_size']}"
            for k, v in cell_metrics(cell).items():
                all_metrics[f"{cell['backend']}/{cell['device']}/{prefix}/{k}"] = v
                per_backend.setdefault((cell["backend"], cell["device"]), {})[f"{prefix}/{k}"] = v
        log(parent_id, run_params(doc), all_metrics)
        if result_path is not None:
            client.log_artifact(parent_id, str(result_path))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "results.json"
                from dlbench.execution.results import write_atomic

                write_atomic(path, doc)
                client.log_artifact(parent_id, str(path))
        for backend, per_device in (doc.get("backends") or {}).items():
            for device, info in per_device.items():
                child = client.create_run(
                    exp_id,
                    run_name=f"{backend}/{device}",
                    tags={**tags, "mlflow.parentRunId": parent_id},
                )
                params = {"backend": backend, "device": device}
                params.update(
                    {f"version.{k}": _param(v) for k, v in (info.get("versions") or {}).items()}
                )
                params.update(
                    {f"setting.{k}": _param(v) for k, v in (info.get("settings") or {}).items()}
                )
                parity = info.get("parity")
                params["parity_ok"] = "reference" if parity is None else str(parity.get("ok"))
                metrics = dict(per_backend.get((backend, device), {}))
                if info.get("build_time_s") is not None:
                    metrics["build_time_s"] = float(info["build_time_s"])
                log(child.info.run_id, params, metrics)
                client.set_terminated(
                    child.info.run_id, "FINISHED" if info.get("status") != "failed" else "FAILED"
                )
                children.append(child.info.run_id)
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    return {
        "run_id": parent_id,
        "child_run_ids": children,
        "experiment": experiment,
        "experiment_id": exp_id,
        "tracking_uri": uri,
    }
