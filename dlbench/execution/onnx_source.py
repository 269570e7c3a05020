"""An imported ONNX model checked against its source: the ORIGINAL file run in ONNX Runtime.

When ``dlbench run --model model.onnx`` imports a file (:func:`dlbench.spec.from_onnx`), every
backend runs the imported ModelSpec, so the usual parity check (each backend against the float64
NumPy reference of that spec) says the backends agree with the spec, not that the spec is the
file. This module closes the loop: an ``onnx_original`` worker job runs the original file on the
parity batch in the backend that runs ONNX files (ONNX Runtime; a framework, so never in the
parent; found through the registry, ``backends.onnx_runtime()``); the runner compares
the reference with it (``doc["model"]["onnx_original"]["parity"]``: the import itself) and every
backend's outputs with it (``backends[b][d]["parity_onnx_original"]``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["is_onnx_path", "file_summary", "run_original_job", "original_outputs"]


def is_onnx_path(model: Any) -> bool:
    """Whether ``model`` (a ``--model`` value) names an ONNX file."""
    return isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx")


def file_summary(path: str | Path) -> dict[str, Any]:
    """Path, size and SHA-256 of the original file (what was imported, for the record)."""
    p = Path(path)
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": h.hexdigest()}


def run_original_job(job: dict[str, Any], events: Any) -> int:
    """Worker side (job kind ``onnx_original``): ``job["onnx_path"]`` wrapped by the backend
    that runs ONNX files (``job["backend"]``, with ``job["options"]``) on the inputs in
    ``job["inputs_path"]``; the output is saved to ``job["out"]``. Events: ``original``
    (backend, versions, settings, seconds), ``fatal``, ``done``."""
    from dlbench.execution.memory import peak_rss_bytes
    from dlbench.execution.worker import _fatal
    from dlbench.model.backend import get_backend

    try:
        t0 = time.perf_counter()
        backend = get_backend(job["backend"], **(job.get("options") or {}))
        model = backend.wrap(job["onnx_path"], device="cpu", name=Path(job["onnx_path"]).stem)
        x = np.load(job["inputs_path"], allow_pickle=False)
        ids = x.dtype.kind == "i"  # token ids go in as they are
        out = np.asarray(model.predict(x if ids else x.astype(np.float32, copy=False)))
        np.save(job["out"], out)
        events.emit(
            {
                "type": "original",
                "path": job["out"],
                "backend": job["backend"],
                "versions": backend.versions(),
                "settings": model.settings(),
                "seconds": time.perf_counter() - t0,
            }
        )
    except BaseException as exc:  # report, whatever it was
        return _fatal(events, exc)
    events.emit({"type": "done", "peak_rss_bytes": peak_rss_bytes()})
    return 0


def original_outputs(
    onnx_path: str | Path,
    inputs: np.ndarray,
    workdir: Path,
    env: dict[str, str],
    timeout: float,
    config: Any = None,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Parent side: run the ``onnx_original`` job in the registry's ONNX runner (with the run's
    shared settings, e.g. threads, from ``config``); returns (outputs or None, info) where info
    holds ``backend``, ``versions`` and ``settings``, or ``error`` when the file could not be
    run."""
    from dlbench.execution.supervisor import STDERR_TAIL, supervise
    from dlbench.execution.worker import backend_options
    from dlbench.registry import backends

    runner = backends.onnx_runtime()
    if runner is None:
        return None, {"error": "no registered backend runs ONNX files"}
    message = backends.entry(runner).missing_message()
    if message:
        return None, {"error": message}
    inputs_path = workdir / "onnx_original.inputs.npy"
    inputs = np.asarray(inputs)
    dtype = np.int64 if inputs.dtype.kind in "iu" else np.float32  # token ids stay integers
    np.save(inputs_path, np.ascontiguousarray(inputs, dtype=dtype))
    job = {
        "kind": "onnx_original",
        "backend": runner,
        "options": backend_options(config, runner) if config is not None else {},
        "onnx_path": str(onnx_path),
        "inputs_path": str(inputs_path),
        "out": str(workdir / "onnx_original.out.npy"),
    }
    got: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> bool:
        if ev["type"] in ("original", "fatal"):
            got.update(ev)
        return ev["type"] == "fatal"

    outcome = supervise(job, env, workdir, "onnx-original", on_event, timeout)
    if outcome.timed_out:
        return None, {"error": f"{runner} on the original file timed out after {timeout:g} s"}
    if got.get("type") != "original":
        why = got.get("error") or outcome.stderr_tail[-STDERR_TAIL:] or outcome.exit_reason
        return None, {"error": f"{runner} could not run the original file: {why}"}
    out = np.load(got["path"], allow_pickle=False)
    return out, {k: got.get(k) for k in ("backend", "versions", "settings")}
