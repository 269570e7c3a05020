"""The worker process: one backend on one device, in a fresh interpreter.

Started by :mod:`dlbench.execution.runner` as ``python -m dlbench.execution.worker JOB.json`` with the thread
environment variables already set, so they are in force before the framework is imported. It
reports events as JSON lines appended (and flushed) to the job's event file, so everything it
finished survives if it crashes later:

``ready`` (versions, settings, build time), ``parity`` (path of the outputs on the parity batch),
``start`` / ``cell`` / ``cell_error`` per cell, ``fatal`` (build failed), ``done``.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

import numpy as np


class _Events:
    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def emit(self, event: dict[str, Any]) -> None:
        from dlbench.serialize import to_json_safe

        self._fh.write(json.dumps(to_json_safe(event), allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def backend_options(config: Any, name: str, options_of: str | None = None) -> dict[str, Any]:
    """The options backend ``name`` is built with: the shared settings it accepts (per its
    manifest, nothing imported), then the user's own for ``options_of`` (default ``name``).
    Checked by the manifest: an unknown option or a bad value is a ConfigError, raised in the
    parent before any worker starts (:func:`dlbench.execution.runner.run`)."""
    from dlbench.registry import backends

    manifest = backends.manifest(name)
    shared = {
        "intra_op_threads": config.intra_op_threads,
        "inter_op_threads": config.inter_op_threads,
        "precision": config.precision,
    }
    accepted = set(manifest.option_names())
    opts = {k: v for k, v in shared.items() if k in accepted}
    opts.update(config.backend_options.get(options_of or name, {}))
    return manifest.validate_options(opts)


def run_job(job: dict[str, Any]) -> int:
    from dlbench import datasets
    from dlbench.execution import memory
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.scenarios import run_scenario
    from dlbench.model.backend import get_backend
    from dlbench.model.spec import ModelSpec
    from dlbench.registry import backends as backend_registry

    events = _Events(job["events"])
    name, device = job["backend"], job["device"]
    try:
        for module in filter(None, os.environ.get("DLBENCH_WORKER_PLUGINS", "").split(",")):
            importlib.import_module(module)
        config = BenchmarkConfig.from_dict(job["config"])
        dataset = datasets.load(
            config.dataset, root=config.dataset_root, split=config.split, **config.dataset_options
        )
        spec = ModelSpec.load(job["spec_path"])
        export = job.get("export")
        composite = backend_registry.manifest(name).composite
        if composite is not None:  # e.g. torch>onnxruntime: the exported file in the target
            target = composite[1]
            t0 = time.perf_counter()
            backend = get_backend(target, **backend_options(config, target))
            model = backend.wrap(job["onnx_path"], device=device, name=spec.name)
        else:
            t0 = time.perf_counter()
            backend = get_backend(name, **backend_options(config, name))
            model = backend.build(spec, device)
        build_time = time.perf_counter() - t0
        settings = model.settings()
        versions = backend.versions()
        if export:
            settings["via_onnx"] = {
                k: export.get(k) for k in ("source", "exporter", "opset", "dynamic_batch")
            }
            versions = {**versions, **(export.get("versions") or {})}
        events.emit(
            {
                "type": "ready",
                "versions": versions,
                "settings": settings,
                "build_time_s": build_time,
                "weight_bytes": model.weight_bytes(),
                "peak_rss_bytes": peak_rss_bytes(),
                "pid": os.getpid(),
            }
        )
        parity_batch = dataset.get_batch(np.asarray(job["parity_indices"], dtype=np.int64)).inputs
        t0 = time.perf_counter()
        out = np.asarray(model.predict(parity_batch))
        first_call = time.perf_counter() - t0
        np.save(job["parity_path"], out, allow_pickle=False)
        events.emit({"type": "parity", "path": job["parity_path"], "first_call_s": first_call})
    except BaseException as exc:  # report, whatever it was
        events.emit(
            {"type": "fatal", "error": _error_text(exc), "traceback": traceback.format_exc()}
        )
        return 1

    for cell in job["cells"]:
        events.emit({"type": "start", "id": cell["id"]})
        started = time.time()
        try:
            record = run_scenario(
                cell["scenario"],
                model,
                dataset,
                batch_size=cell["batch_size"],
                options=config.scenario_options(cell["scenario"]),
            )
            record["memory"] = memory.snapshot(model)
            events.emit(
                {
                    "type": "cell",
                    "id": cell["id"],
                    "record": record,
                    "started": started,
                    "finished": time.time(),
                }
            )
        except Exception as exc:
            events.emit(
                {
                    "type": "cell_error",
                    "id": cell["id"],
                    "error": _error_text(exc),
                    "traceback": traceback.format_exc(),
                    "started": started,
                    "finished": time.time(),
                }
            )
    events.emit({"type": "done"})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dlbench.execution.worker JOB.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    return run_job(job)


if __name__ == "__main__":
    sys.exit(main())
