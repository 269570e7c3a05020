"""The worker process: the one entry point for every job, in a fresh interpreter.

Started by :mod:`dlbench.execution.supervisor` as ``python -m dlbench.execution.worker JOB.json``
with the backends' environment already set (threads, allocator), so it is in force before a
framework is imported. The job's ``kind`` says what to run (:data:`JOB_KINDS`):

- ``cells`` (default): one backend on one device, a group of benchmark cells. Events: ``ready``
  (versions, settings, build time), ``parity`` (path of the outputs on the parity batch),
  ``start`` / ``cell`` / ``cell_error`` per cell, ``fatal`` (build failed), ``done``.
- ``train``: one backend trained on every fold (:func:`dlbench.train.local.run_training_job`).
  Events: ``ready``, ``epoch``, ``fold``, ``fatal``, ``done``.
- ``export``: a spec exported to ONNX from one backend and checked (the preparation step of a
  composite backend such as ``torch>onnxruntime``). Events: ``exported`` (the report),
  ``fatal``, ``done``.

Events are JSON lines appended (and flushed) to the job's event file, so everything the worker
finished survives if it crashes later.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from typing import Any

import numpy as np

from dlbench.execution.memory import peak_rss_bytes
from dlbench.execution.precision import UnsupportedPrecision


class _Events:
    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def emit(self, event: dict[str, Any]) -> None:
        from dlbench.serialize import to_json_safe

        self._fh.write(json.dumps(to_json_safe(event), allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def backend_options(
    config: Any, name: str, options_of: str | None = None, precision: str | None = None
) -> dict[str, Any]:
    """The options backend ``name`` is built with: the shared settings it accepts (per its
    manifest, nothing imported), then the user's own for ``options_of`` (default ``name``);
    ``precision`` is the cell group's (default: the run's first).
    Checked by the manifest: an unknown option or a bad value is a ConfigError, raised in the
    parent before any worker starts (:func:`dlbench.execution.runner.run`)."""
    from dlbench.registry import backends

    manifest = backends.manifest(name)
    shared = {
        "intra_op_threads": config.intra_op_threads,
        "inter_op_threads": config.inter_op_threads,
        "precision": precision or config.precisions()[0],
    }
    accepted = set(manifest.option_names())
    opts = {k: v for k, v in shared.items() if k in accepted}
    opts.update(config.backend_options.get(options_of or name, {}))
    return manifest.validate_options(opts)


def _fatal(events: _Events, exc: BaseException) -> int:
    events.emit({"type": "fatal", "error": _error_text(exc), "traceback": traceback.format_exc()})
    return 1


def run_export(job: dict[str, Any], events: _Events) -> int:
    """An ``export`` job: ``spec_path`` exported from ``source`` to ``out`` and checked in the
    ONNX runtime; a file that fails its own parity check is kept (the run's parity check
    against the numpy reference flags it like any backend)."""
    try:
        from dlbench.export.core import to_onnx
        from dlbench.model.spec import ModelSpec

        spec = ModelSpec.load(job["spec_path"])
        report = to_onnx(
            spec,
            job["out"],
            source=job["source"],
            exporter=job.get("exporter"),
            tolerance=float(job.get("tolerance", 1e-4)),
            force=True,
        )
        events.emit({"type": "exported", "report": report.to_dict()})
    except BaseException as exc:  # report, whatever it was
        return _fatal(events, exc)
    events.emit({"type": "done", "peak_rss_bytes": peak_rss_bytes()})
    return 0


def run_cells(job: dict[str, Any], events: _Events) -> int:
    """A ``cells`` job: build (or, for a composite backend, wrap the exported file), check
    parity on the parity batch, then run each cell's scenario."""
    from dlbench import datasets
    from dlbench.execution import allocator, memory
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.scenarios import run_scenario
    from dlbench.execution.scenarios.detection import pipeline_for
    from dlbench.model.backend import get_backend
    from dlbench.model.spec import ModelSpec
    from dlbench.registry import backends as backend_registry

    name, device = job["backend"], job["device"]
    precision = job.get("precision") or "float32"
    try:
        config = BenchmarkConfig.from_dict(job["config"])
        dataset = datasets.load(
            config.dataset, root=config.dataset_root, split=config.split, **config.dataset_options
        )
        spec = ModelSpec.load(job["spec_path"])
        export = job.get("export")
        composite = backend_registry.manifest(name).composite
        if composite is not None:  # e.g. torch>onnxruntime: the exported file in the target
            target = composite[1]
            if precision != "float32":
                raise UnsupportedPrecision(
                    name, precision, device, "a via-ONNX row runs the exported float32 file"
                )
            t0 = time.perf_counter()
            backend = get_backend(target, **backend_options(config, target))
            model = backend.wrap(job["onnx_path"], device=device, name=spec.name)
        else:
            backend, model, t0 = _build_at_precision(config, name, spec, device, precision)
        build_time = time.perf_counter() - t0
        settings = model.settings()
        settings.update(_precision_settings(config, name, device, precision, settings))
        # a detector: its decoding and post-processing on this backend (option postprocess)
        runs_on = composite[1] if composite is not None else name
        detection = pipeline_for(
            spec, runs_on, backend_options(config, runs_on).get("postprocess", "native")
        )
        if detection is not None:
            settings["postprocess"] = detection.describe()
        settings["allocator"] = allocator.in_force()  # issue 23: what this worker started with
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
    except UnsupportedPrecision as exc:  # not a failure: the cells are skipped with the reason
        events.emit({"type": "skipped", "reason": exc.reason, "error": str(exc)})
        events.emit({"type": "done"})
        return 0
    except BaseException as exc:  # report, whatever it was
        return _fatal(events, exc)

    meter, baseline = _energy_meter(config, device)
    train_spec = None  # the training cells' initial weights, loaded by the first of them
    for cell in job["cells"]:
        events.emit({"type": "start", "id": cell["id"]})
        started = time.time()
        try:
            hooks = {"meter": meter} if meter is not None and cell["scenario"] in TIMED else {}
            if detection is not None and cell["scenario"] == "accuracy":
                hooks["detection"] = detection
            if cell["scenario"] == "training":  # the spec's initial weights, the train split
                if train_spec is None:
                    train_spec = ModelSpec.load(job.get("train_spec_path") or job["spec_path"])
                hooks["context"] = _training_context(config, train_spec, precision)
            record = run_scenario(
                cell["scenario"],
                model,
                dataset,
                batch_size=cell["batch_size"],
                options=config.scenario_options(cell["scenario"]),
                **hooks,
            )
            record["energy"] = _energy(record, cell, config, baseline)
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


def _training_context(config: Any, spec: Any, precision: str) -> Any:
    """What a ``training`` cell needs besides the model (its scenario's ``context`` hook)."""
    from dlbench.execution.scenarios.training import TrainingContext

    return TrainingContext(
        spec=spec,
        dataset=config.dataset,
        dataset_root=config.dataset_root,
        dataset_options=dict(config.dataset_options),
        precision=precision,
        intra_op_threads=config.intra_op_threads,
        inter_op_threads=config.inter_op_threads,
    )


def _build_at_precision(
    config: Any, name: str, spec: Any, device: str, precision: str
) -> tuple[Any, Any, float]:
    """``(backend, model, t0)``: ``spec`` built by backend ``name`` at ``precision``.

    float32 is the backend's own ``build``. Another precision is built by the backend
    package's ``precision`` module, by convention (``dlbench.backends.torch.precision``:
    ``build_precision(backend, spec, device, precision, calibration)``), beside its
    ``backend.py``; int8 gets the run's calibration batch (:func:`calibration_inputs`), not
    timed as build.

    Raises:
        UnsupportedPrecision: the backend has no precision module, or it cannot do this one.
    """
    from dlbench.model.backend import get_backend

    backend = get_backend(name, **backend_options(config, name, precision=precision))
    if precision == "float32":
        t0 = time.perf_counter()
        return backend, backend.build(spec, device), t0
    module = f"{type(backend).__module__.rpartition('.')[0]}.precision"
    hook = None
    if importlib.util.find_spec(module) is not None:
        hook = getattr(importlib.import_module(module), "build_precision", None)
    if hook is None:
        raise UnsupportedPrecision(
            name, precision, device, f"the backend has no precision module ({module})"
        )
    calibration = calibration_inputs(config) if precision == "int8" else None
    t0 = time.perf_counter()
    return backend, hook(backend, spec, device, precision, calibration), t0


def calibration_inputs(config: Any) -> np.ndarray:
    """The int8 calibration batch: ``config.calibration_samples`` samples of the dataset's
    train split drawn with ``config.seed`` (:func:`dlbench.execution.precision.calibration_batch`)."""
    from dlbench import datasets
    from dlbench.execution.precision import calibration_batch

    train = datasets.load(
        config.dataset, root=config.dataset_root, split="train", **config.dataset_options
    )
    return calibration_batch(train, config.calibration_samples, config.seed)


def _precision_settings(
    config: Any, name: str, device: str, precision: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """The precision a cell group ran at, checked against what the backend reports: a backend
    that builds a non-float32 model must say so in ``precision_in_force`` (else it ignored the
    request: the cells are skipped, never timed as what they are not)."""
    out: dict[str, Any] = {"precision": precision}
    if precision == "float32":
        return out
    in_force = settings.get("precision_in_force")
    if in_force != precision:
        raise UnsupportedPrecision(
            name,
            precision,
            device,
            f"the backend does not implement it (it reports precision_in_force={in_force!r})",
        )
    if precision == "int8":
        out["calibration"] = {
            "split": "train",
            "samples": config.calibration_samples,
            "seed": config.seed,
        }
    return out


#: Scenarios whose measured loop the energy meters are read around.
TIMED = ("latency", "throughput")


def _energy_meter(config: Any, device: str) -> tuple[Any, Any]:
    """The worker's energy monitor (every readable meter) and its idle baseline, if asked for.

    Created once per worker; a meter that cannot be read says why in every cell's record."""
    from dlbench.execution.energy import POWERCAP_ROOT, EnergyMonitor

    root = os.environ.get("DLBENCH_POWERCAP_ROOT", POWERCAP_ROOT)  # another tree (tests)
    try:
        monitor = EnergyMonitor.default(rapl_root=root, gpu=not device.startswith("cpu"))
        baseline = monitor.idle(config.energy_baseline) if config.energy_baseline else None
    except Exception:  # energy is a bonus: never let it cost the timings
        return None, None
    return monitor, baseline


def _energy(record: dict[str, Any], cell: dict[str, Any], config: Any, baseline: Any) -> Any:
    """The cell's ``energy`` record: joules per sample, watts, cost and CO2, or why not."""
    from dlbench.execution.energy import energy_record
    from dlbench.execution.scenarios.offline import READING_KEY

    reading = record.pop(READING_KEY, None)
    timing = record.get("timing") or {}
    samples = int(timing.get("n") or 0) * int(timing.get("batch_size") or cell["batch_size"])
    out = energy_record(
        reading,
        samples,
        baseline=baseline,
        price_per_hour=config.price_per_hour,
        carbon_intensity=config.carbon_intensity,
        throughput=timing.get("throughput"),
    )
    if cell["scenario"] not in TIMED:
        out["reason"] = f"energy is measured around the timed loops only ({', '.join(TIMED)})"
    return out


#: job kind -> ``"module:function"`` called as ``function(job, events)``, returning the exit code.
JOB_KINDS = {
    "cells": "dlbench.execution.worker:run_cells",
    "train": "dlbench.train.local:run_training_job",
    "export": "dlbench.execution.worker:run_export",
    # an imported ONNX model's original file in ONNX Runtime (the check of the import)
    "onnx_original": "dlbench.execution.onnx_source:run_original_job",
}


def run_job(job: dict[str, Any]) -> int:
    """Run ``job`` (its ``kind`` among :data:`JOB_KINDS`), reporting to its event file."""
    from dlbench.model.manifest import load_attr

    events = _Events(job["events"])
    try:
        plugins = job.get("plugins") or os.environ.get("DLBENCH_WORKER_PLUGINS", "")
        for module in filter(None, plugins.split(",")):
            importlib.import_module(module)
        kind = job.get("kind", "cells")
        if kind not in JOB_KINDS:
            raise ValueError(f"Expected a job kind in {sorted(JOB_KINDS)}. Received: {kind!r}")
        fn = load_attr(JOB_KINDS[kind])
    except BaseException as exc:
        return _fatal(events, exc)
    return int(fn(job, events))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dlbench.execution.worker JOB.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    from dlbench.execution.supervisor import die_with_parent

    die_with_parent(job.get("parent_pid"))  # never an orphan computing on after its run
    return run_job(job)


if __name__ == "__main__":
    sys.exit(main())
