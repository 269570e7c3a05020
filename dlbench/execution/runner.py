"""Running a benchmark: one fresh worker process per (backend, device), results kept cell by cell.

:func:`run` is the public entry point (``dlbench.run(config)``). The parent process never imports
a framework: it loads the dataset and the ModelSpec, computes the numpy reference outputs for the
parity check, then starts ``python -m dlbench.execution.worker`` for each backend and device with the thread
settings in its environment. A worker that raises, crashes (even by a signal) or runs past
``cell_timeout`` has its cell marked failed with the reason; a fresh worker continues with the
cells that remain, and every finished cell is already in the result file.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.execution import allocator, environment
from dlbench.execution import results as res
from dlbench.execution.config import BenchmarkConfig, Cell
from dlbench.execution.onnx_source import file_summary, is_onnx_path
from dlbench.execution.precision import parity_verdict, row_name, skipped_cell_record, split_row
from dlbench.execution.precision import tolerance as precision_tolerance
from dlbench.execution.supervisor import STDERR_TAIL, WorkerProcess, run_workdir, supervise
from dlbench.execution.worker import backend_options

__all__ = ["WorkerProcess", "export_onnx", "run", "thread_env"]

#: Called as ``on_event(kind, payload)``; kinds: ``plan``, ``worker``, ``cell``, ``warning``.
EventCallback = Callable[[str, dict[str, Any]], None]


#: Thread variables every numeric library reads at import (OpenMP, MKL, OpenBLAS, ...).
GENERIC_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_env(intra: int, inter: int, backends: list[str] | None = None) -> dict[str, str]:
    """Environment variables that fix every framework's thread pools before it is imported:
    the generic ones, then each backend's own (its manifest's ``worker_env``; default: every
    registered backend's, so one environment serves any worker)."""
    from dlbench.registry import backends as registry

    env = {var: str(intra) for var in GENERIC_THREAD_VARS}
    names = registry.names() if backends is None else backends
    for name in names:
        try:
            manifest = registry.manifest(name)
        except Exception:  # a plugin that cannot even be described: its worker will say why
            continue
        env.update(manifest.worker_env(intra, inter))
    return env


def load_model_spec(config: BenchmarkConfig, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The ModelSpec named by ``config.model``: an ONNX file (imported, its symbolic axes set
    from the dataset's sample shape), a saved spec file or a zoo entry."""
    from dlbench import zoo
    from dlbench.model.spec import ModelSpec

    if is_onnx_path(config.model):
        return zoo.load(config.model, input_shape=tuple(input_shape))

    if config.model.endswith(".json") or os.sep in config.model:
        path = Path(config.model)
        if not path.exists():
            raise ConfigError(f"Model file not found: {path}")
        return ModelSpec.load(path)
    opts = {"num_classes": num_classes, "input_shape": tuple(input_shape), "seed": config.seed}
    opts.update(config.model_options)
    return zoo.get(config.model, **opts)


#: Settings that mean the same thing in every backend, each reported under this key by the
#: backend itself; those compared among CUDA devices only (TF32 does nothing on a CPU).
COMMON_SETTINGS = (
    "intra_op_threads",
    "inter_op_threads",
    "intra_op_threads_in_force",
    "inter_op_threads_in_force",
    "precision",
    "deterministic",
    "tf32",
    "allocator",  # issue 23: recorded by each worker (dlbench.execution.allocator.in_force)
)
GPU_ONLY_SETTINGS = frozenset({"tf32"})


def _settings_warnings(doc: dict[str, Any]) -> list[str]:
    """Warn when backends in one comparison differ on a setting that changes speed.

    Only settings that mean the same thing in every framework are compared: the threads asked
    for and the threads actually in force (a swapped intra/inter knob shows up there), precision,
    determinism, and TF32 (among CUDA devices only: TF32 does nothing on a CPU). Compile modes
    (torch eager/compile, TF function/XLA, JAX jit, ORT optimisation level) have no common scale:
    they are recorded per backend, not compared. Each backend reports these common keys itself.
    """
    # rows of another precision (onnxruntime@int8) are compared among themselves only
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for backend, per_device in doc["backends"].items():
        precision = split_row(backend)[1]
        for device, info in per_device.items():
            settings = info.get("settings") or {}
            for k in COMMON_SETTINGS:
                if k in GPU_ONLY_SETTINGS and not device.startswith("cuda"):
                    continue
                if k in settings:
                    seen.setdefault((k, precision), {})[f"{backend}/{device}"] = settings[k]
    out = []
    for (k, precision), values in seen.items():
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            detail = ", ".join(f"{who}={v}" for who, v in sorted(values.items()))
            at = "" if precision == "float32" else f" (at {precision})"
            out.append(f"Settings differ across backends{at} for {k}: {detail}")
    from dlbench.analysis.settings_check import run_warnings

    out.extend(run_warnings(doc))  # requested settings a backend could not put in force
    return out


class _Run:
    """The state of one benchmark run: its document, where it is saved, and its callbacks."""

    def __init__(
        self,
        config: BenchmarkConfig,
        doc: dict[str, Any],
        out_path: Path | None,
        emit: EventCallback,
    ) -> None:
        self.config = config
        self.doc = doc
        self.out_path = out_path
        self.emit = emit
        #: Why the document is in memory only (nowhere could be written), else None.
        self.unsaved: str | None = None
        #: Where cell groups run (issue 18; set by :func:`_run`).
        self.executor: Any = None
        #: outputs of the original ONNX file in ONNX Runtime on the parity batch (``--model
        #: x.onnx``), each backend's outputs are also compared with them
        self.original: np.ndarray | None = None

    def save(self) -> None:
        """Write the document; on a write error (full disk, read-only, I/O error) to a rescue
        file (said in a warning and a ``saved_elsewhere`` event) and, when nothing can be
        written, keep it in memory and try again at the next save: no measured cell is lost."""
        self.doc["updated"] = res.now()
        if self.out_path is None:
            return
        try:
            res.write_atomic(self.out_path, self.doc)
            self.unsaved = None
            return
        except OSError as exc:
            failed, why = self.out_path, f"{exc.strerror or exc}"
        note = f"Could not write the results to {failed} ({why})"
        for path in res.rescue_paths(failed, self.doc["run_id"]):
            self.doc["warnings"].append(f"{note}; they are written to {path} instead.")
            try:
                res.write_atomic(path, self.doc)
            except OSError:
                self.doc["warnings"].pop()
                continue
            self.out_path, self.unsaved = path, None
            self.emit("warning", {"message": self.doc["warnings"][-1]})
            self.emit("saved_elsewhere", {"path": str(path), "failed": str(failed), "error": why})
            return
        if self.unsaved is None:
            self.emit("unsaved", {"path": str(failed), "error": why})
        tried = ", ".join(str(p) for p in res.rescue_paths(failed, self.doc["run_id"]))
        self.unsaved = f"{note}, nor to any rescue file ({tried})"

    def warn(self, message: str) -> None:
        if message not in self.doc["warnings"]:
            self.doc["warnings"].append(message)
            self.emit("warning", {"message": message})

    def record(self, rec: dict[str, Any]) -> None:
        """Store a finished (or failed) cell and save the document at once."""
        res.upsert_cell(self.doc, rec)
        self.save()
        self.emit("cell", rec)

    def fail(self, cell: Cell, error: str) -> None:
        self.record(res.failed_cell_record(cell.to_dict(), error))


def run(
    config: BenchmarkConfig | dict[str, Any] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_event: EventCallback | None = None,
    plugins: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Run a benchmark and return the result document (also written to ``out`` if given).

    Args:
        config: A :class:`BenchmarkConfig` or a dict of its fields.
        **fields: Config fields given directly (they override ``config``'s). ``model`` may be
            a wrapped detector object (``wrap(..., detection=...)``): its cells run in this
            process on its own backend (:mod:`dlbench.execution.wrapped_run`).
        out: Result file, rewritten atomically after every cell.
        resume: Continue the run in ``out``: cells already finished are skipped.
        on_event: Progress callback (see :data:`EventCallback`).
        plugins: Modules every worker imports first (to register third-party backends or
            datasets that are not entry points).

    Example:
        >>> import dlbench
        >>> doc = dlbench.run({"backends": ["numpy"], "scenarios": ["accuracy"]})  # doctest: +SKIP
        >>> doc["cells"][0]["metrics"]["accuracy"]  # doctest: +SKIP

    Raises:
        ConfigError: ``out`` is being written by another run (:func:`results.locked`), among
            the configuration errors found before any worker starts.
        ResultWriteError: Nothing could be written; its ``document`` holds every cell.
    """
    from dlbench.execution import wrapped_run

    if fields or config is None:  # dlbench.run(model=..., dataset=...): fields over config
        base = config.to_dict() if isinstance(config, BenchmarkConfig) else dict(config or {})
        config = {**base, **fields}
    live = config.get("model") if isinstance(config, dict) else None
    with res.locked(out) if out is not None else contextlib.nullcontext():
        if wrapped_run.is_live_model(live):  # a wrapped detector object: run in this process
            rest = {k: v for k, v in config.items() if k != "model"}
            return wrapped_run.run_live(live, rest, out=out, resume=resume, on_event=on_event)
        if isinstance(config, dict):
            config = BenchmarkConfig.from_dict(config)
        if wrapped_run.wants_contract(config):  # an ONNX detector with its output contract
            return wrapped_run.run_contract_file(
                config, out=out, resume=resume, on_event=on_event
            )
        return _run(config, out=out, resume=resume, on_event=on_event, plugins=plugins)


def _run(
    config: BenchmarkConfig | dict[str, Any],
    *,
    out: str | os.PathLike[str] | None,
    resume: bool,
    on_event: EventCallback | None,
    plugins: list[str] | None,
) -> dict[str, Any]:
    from dlbench import datasets
    from dlbench.model.backend import get_backend

    if isinstance(config, dict):
        config = BenchmarkConfig.from_dict(config)
    for module in plugins or []:
        importlib.import_module(module)
    from dlbench.registry import backends as backend_registry

    missing_framework: dict[str, str] = {}
    for name in config.resolved_backends():
        # unknown name: RegistryError, a usage error; a composite (torch>onnxruntime) needs its
        # source, its exporter and its target: all found without importing a framework
        entry = backend_registry.entry(name)
        message = entry.missing_message()
        if message:
            missing_framework[name] = message
        if message and entry.manifest_ref is None:
            continue  # a class registered with requirements: describing it needs its framework
        # options checked here, by the manifest, so a typo stops the run before any worker
        composite = entry.manifest().composite
        backend_options(config, composite[1] if composite else name)
    from dlbench.execution.scenarios.detection import per_image_accuracy

    config = per_image_accuracy(config)  # a detection dataset: the accuracy cell is batch 1
    cfg_dict = config.to_dict()
    out_path = Path(out) if out is not None else None

    if resume and out_path is None:
        raise ConfigError("Expected an output file to resume from (--out). Received: none")
    if resume and out_path.exists():
        doc = res.load(out_path)
        res.check_resumable(doc, cfg_dict)
        doc["config"] = cfg_dict
        doc["status"] = "running"
    else:
        doc = res.new_document(cfg_dict, environment.capture())
    state = _Run(config, doc, out_path, on_event or (lambda kind, payload: None))
    from dlbench.execution.executors import get_executor

    state.executor = executor = get_executor(config)  # issue 18: local (default) or ray
    if executor.name == "local":  # a Ray node's GPU is checked by its own worker
        environment.check_devices(config.devices)  # a missing GPU stops the run before any worker
    # issue 22: a busy machine and more threads than usable cores are said up front
    for message in [
        environment.busy_message(environment.machine_load()),
        *environment.thread_warnings(config.intra_op_threads, config.inter_op_threads),
    ]:
        if message:
            state.warn(message)

    dataset = datasets.load(
        config.dataset, root=config.dataset_root, split=config.split, **config.dataset_options
    )
    info = dataset.info
    if info.synthetic:
        state.warn(
            f"Dataset {info.name!r} is synthetic: fine for timing, meaningless for accuracy."
        )
    # a detector on a classification dataset, or the reverse: refused before any worker starts
    from dlbench.execution.scenarios.detection import check_model_task

    check_model_task(config.model, info)
    from dlbench.analysis import weights as model_weights

    from_zoo = not (
        config.model.endswith(".json") or os.sep in config.model or is_onnx_path(config.model)
    )
    if from_zoo:  # issue 22: a re-shaped zoo model is said, and refused when it has trained weights
        reshaped = model_weights.reshape_plan(
            config.model,
            tuple(info.input_shape),
            info.num_classes,
            allow=config.reshape_model,
            model_options=config.model_options,
        )
        if reshaped:
            state.warn(reshaped)
    spec = load_model_spec(config, info.input_shape, info.num_classes)
    doc["dataset"] = info.to_dict()
    doc["model"] = {"name": spec.name, "fingerprint": spec.fingerprint(), "stats": spec.stats()}
    if is_onnx_path(config.model):
        doc["model"]["onnx_original"] = file_summary(config.model)
        doc["model"]["onnx_import"] = spec.metadata.get("onnx_import")
    expected_input = _input_check(spec, info)
    if expected_input is not None:
        doc["model"]["input"] = expected_input
        if not expected_input["match"]:
            state.warn(expected_input["message"])
    if not config.skip_memory_check:  # issue 22: what cannot fit is refused before any worker
        from dlbench.analysis.memory_estimate import check_cells

        done_ids = res.done_cell_ids(doc) if resume else set()
        for message in check_cells(spec, [c for c in config.cells() if c.id not in done_ids]):
            state.warn(message)
    doc["model"]["weights"] = model_weights.weights_info(spec, from_zoo=from_zoo)
    if doc["model"]["weights"]["trained"] is False and "accuracy" in config.scenarios:
        state.warn(
            f"Model {spec.name!r} has {model_weights.UNTRAINED}: its accuracy is a timing-only "
            "figure, not a result (no winner is named on it)."
        )

    parity_indices = list(range(min(config.parity_samples, len(dataset))))
    parity_inputs = dataset.get_batch(np.asarray(parity_indices)).inputs
    reference = get_backend("numpy").build(spec).predict(parity_inputs)

    cells = executor.expand(config.cells(), doc, dataset)  # --nodes all: one copy per node
    done = res.done_cell_ids(doc) if resume else set()
    todo = [c for c in cells if c.id not in done]
    state.emit(
        "plan",
        {"cells": [c.id for c in cells], "todo": [c.id for c in todo], "skipped": sorted(done)},
    )
    state.save()

    todo = _skip_untrainable(state, todo)  # training cells a backend cannot run: skipped
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for c in todo:  # one worker per backend, device and precision (each builds its own model)
        groups.setdefault((c.backend, c.device, c.precision), []).append(c)

    env = {**os.environ, **thread_env(config.intra_op_threads, config.inter_op_threads)}
    env = allocator.worker_env(env, config.allocator)  # issue 23: the same for every backend
    if plugins:
        env["DLBENCH_WORKER_PLUGINS"] = ",".join(plugins)

    interrupted = False
    with run_workdir() as workdir:  # and the folders of killed runs removed
        spec_path = workdir / "model.json"
        spec.save(spec_path)
        base_job = {
            "config": cfg_dict,
            "spec_path": str(spec_path),
            "parity_indices": parity_indices,
        }
        if "training" in config.scenarios:  # training starts from the seeded initial weights
            base_job["train_spec_path"] = _training_spec(config, spec, info, from_zoo, workdir)
            doc["model"]["training_start"] = (
                "seeded initial weights (pretrained=False)" if from_zoo else "the file's weights"
            )
        exports: dict[str, dict[str, Any]] = {}
        if is_onnx_path(config.model):
            _check_original(state, parity_inputs, reference, workdir, env)
        pending: list[tuple[dict[str, Any], list[Cell]]] = []  # run by the executor
        try:
            for (backend, device, precision), group_cells in groups.items():
                row = row_name(backend, precision)  # onnxruntime@int8: its own labelled row
                if backend in missing_framework and executor.name == "local":
                    doc["backends"].setdefault(row, {})[device] = {
                        "status": "failed",
                        "error": missing_framework[backend],
                    }
                    for c in group_cells:
                        state.fail(c, missing_framework[backend])
                    continue
                job = {**base_job, "backend": backend, "device": device, "precision": precision}
                composite = backend_registry.composite_parts(backend)
                if composite is not None:  # its preparation step: an export job (once per source)
                    source = composite[0]
                    if source not in exports:
                        exports[source] = export_onnx(config, source, spec_path, workdir, env)
                    export = exports[source]
                    binfo = doc["backends"].setdefault(row, {}).setdefault(device, {})
                    binfo["export"] = export.get("report")
                    if not export["ok"]:
                        binfo.update({"status": "failed", "error": export["error"]})
                        for c in group_cells:
                            state.fail(c, export["error"])
                        continue
                    job.update(onnx_path=export["path"], export=export["report"])
                pending.append((job, group_cells))
            executor.run_groups(
                pending, lambda job, cs: _run_group(state, job, cs, reference, workdir, env)
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            executor.close()
    for message in [*_settings_warnings(doc), *allocator.fault_warnings(doc["cells"])]:
        state.warn(message)
    from dlbench.report.detection import detection_summary

    if detection_summary(doc):  # a detector: COCO stats per backend, the largest AP difference
        doc["detection"] = detection_summary(doc)
    if "training" in config.scenarios:  # every backend's step losses against a reference's
        _training_summary(state)
    if config.precisions() != ["float32"]:  # each precision against its backend's float32 row
        from dlbench.report.precision import precision_summary

        doc["precision"] = precision_summary(doc)
    doc["status"] = "interrupted" if interrupted else "complete"
    state.save()
    if state.unsaved:
        raise res.ResultWriteError(state.unsaved, doc)
    if interrupted:
        raise KeyboardInterrupt
    return doc


#: What a via-ONNX row keeps of the export report (in ``backends[...][device]["export"]``).
EXPORT_REPORT_KEYS = (
    "source",
    "exporter",
    "opset",
    "file_bytes",
    "params",
    "op_counts",
    "parity",
    "versions",
    "export_seconds",
    "dynamic_batch",
)


def export_onnx(
    config: BenchmarkConfig, source: str, spec_path: Path, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Export the spec from ``source``: the preparation step of a composite backend
    (``torch>onnxruntime``), an ``export`` job run by the supervisor like every other job.

    Returns ``{"ok", "path", "report"}`` or ``{"ok": False, "error", "report"}``. The export
    keeps a file that fails its own parity check (``force``): the run's parity check against
    the numpy reference flags it like any backend.
    """
    out = workdir / f"{source}.onnx"
    job = {
        "kind": "export",
        "spec_path": str(spec_path),
        "source": source,
        "out": str(out),
        "tolerance": float(config.parity_tolerance),
        "plugins": os.environ.get("DLBENCH_WORKER_PLUGINS", ""),
    }
    got: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> bool:
        if ev["type"] in ("exported", "fatal"):
            got.update(ev)
        return ev["type"] == "fatal"

    outcome = supervise(job, env, workdir, f"{source}-export", on_event, config.cell_timeout)
    if outcome.timed_out:
        return {
            "ok": False,
            "error": f"ONNX export from {source} timed out after {config.cell_timeout:g} s",
            "report": None,
        }
    report = got.get("report") or {}
    if got.get("type") != "exported" or not out.exists() or "path" not in report:
        why = got.get("error") or outcome.stderr_tail[-STDERR_TAIL:] or outcome.exit_reason
        return {"ok": False, "error": f"ONNX export from {source} failed: {why}", "report": None}
    return {"ok": True, "path": str(out), "report": {k: report.get(k) for k in EXPORT_REPORT_KEYS}}


def _run_group(
    state: _Run,
    base_job: dict[str, Any],
    cells: list[Cell],
    reference: np.ndarray,
    workdir: Path,
    env: dict[str, str],
) -> None:
    """Run the cells of one (backend, device) in workers, restarting after a crash."""
    from dlbench.analysis.parity import compare

    config, doc = state.config, state.doc
    backend, device = base_job["backend"], base_job["device"]
    precision = base_job.get("precision") or "float32"
    remaining = list(cells)
    attempt = 0
    binfo = doc["backends"].setdefault(row_name(backend, precision), {}).setdefault(device, {})
    machine_before: dict[str, dict[str, Any]] = {}
    while remaining:
        attempt += 1
        left_before = len(remaining)
        tag = f"{row_name(backend, precision)}-{device.replace(':', '_')}-{attempt}"
        job = {
            **base_job,
            "kind": "cells",
            "cells": [c.to_dict() for c in remaining],
            "parity_path": str(workdir / f"{tag}.parity.npy"),
        }
        by_id = {c.id: c for c in remaining}
        current: Cell | None = None
        fatal: str | None = None

        def on_start(worker: WorkerProcess, attempt: int = attempt) -> None:
            state.emit(
                "worker",
                {"backend": backend, "device": device, "attempt": attempt, "pid": worker.proc.pid},
            )

        def on_event(ev: dict[str, Any], by_id: dict[str, Cell] = by_id) -> bool:
            nonlocal current, fatal
            kind = ev["type"]
            if kind == "ready":
                binfo.update(
                    {
                        "status": "ok",
                        "error": None,
                        "versions": ev["versions"],
                        "settings": ev["settings"],
                        "build_time_s": ev["build_time_s"],
                        "weight_bytes": ev.get("weight_bytes"),
                    }
                )
                state.save()
            elif kind == "parity":
                out = np.load(ev["path"], allow_pickle=False)
                parity = _parity_at(compare, reference, out, config.parity_tolerance, precision)
                binfo["parity"] = parity
                if state.original is not None:  # --model x.onnx: also against the file itself
                    binfo["parity_onnx_original"] = _parity(
                        compare, state.original, out, config.parity_tolerance
                    )
                binfo["first_call_s"] = ev.get("first_call_s")
                if parity.get("informative") is False and not parity["ok"]:
                    state.warn(
                        f"PARITY NOT INFORMATIVE for {backend} on {device}: "
                        f"{parity.get('reason')}. The outputs agree, but this check "
                        "cannot tell a right output from a wrong one."
                    )
                elif not parity["ok"]:
                    state.warn(
                        f"PARITY FAILED for {backend} on {device}: "
                        f"{parity.get('reason') or ''}"
                        f"max abs diff {parity.get('max_abs_diff')}, argmax agreement "
                        f"{parity.get('argmax_agreement')}. Its timings compare a "
                        "different computation."
                    )
                state.save()
            elif kind == "skipped":  # the backend cannot do this precision here: not a failure
                binfo.update({"status": "skipped", "error": None, "skip_reason": ev["reason"]})
                for c in list(remaining):
                    state.record(skipped_cell_record(c.to_dict(), ev["reason"]))
                remaining.clear()
                state.warn(f"Skipped {backend} at {precision} on {device}: {ev['reason']}")
            elif kind == "fatal":
                fatal = ev["error"]
                binfo.update({"status": "failed", "error": fatal})
            elif kind == "start":
                current = by_id[ev["id"]]
                machine_before[ev["id"]] = environment.machine_load()
                state.emit("start", {"id": ev["id"]})
            elif kind in ("cell", "cell_error"):
                cell = by_id[ev["id"]]
                if kind == "cell":
                    rec = res.cell_record(cell.to_dict(), ev, binfo)
                    _record_machine(rec, machine_before.get(ev["id"]))
                    state.record(rec)
                else:
                    state.fail(cell, ev["error"])
                remaining.remove(cell)
                current = None
            return fatal is not None

        outcome = state.executor.supervise(
            job, env, workdir, tag, on_event, config.cell_timeout, on_start
        )
        if outcome.timed_out:
            where = f"cell {current.id}" if current else "building the model"
            reason = f"timed out after {config.cell_timeout:g} s ({where})"
            if current is None:
                fatal = reason
                binfo.update({"status": "failed", "error": reason})
            else:
                state.fail(current, reason)
                remaining.remove(current)
        if fatal:
            for c in list(remaining):
                state.fail(c, f"{backend} on {device} could not start: {fatal}")
            remaining.clear()
        elif outcome.crashed:
            reason = outcome.reason()
            if current is not None:
                state.fail(current, reason)
                remaining.remove(current)
            elif len(remaining) < left_before:
                pass  # died between two cells it had run: a fresh worker goes on with the rest
            else:
                # Died outside any cell (during start-up): nothing more to gain by retrying.
                binfo.update({"status": "failed", "error": reason})
                for c in list(remaining):
                    state.fail(c, reason)
                remaining.clear()


def _training_spec(
    config: BenchmarkConfig, spec: Any, info: Any, from_zoo: bool, work: Path
) -> str:
    """The spec file training cells start from: a zoo model's seeded, untrained network (as
    ``dlbench train``), else the model file's own weights."""
    import inspect

    from dlbench import zoo
    from dlbench.registry import models

    if not from_zoo:
        return str(work / "model.json")
    opts = {"num_classes": info.num_classes, "input_shape": tuple(info.input_shape)}
    opts.update({"seed": config.seed, **config.model_options})
    if "pretrained" in inspect.signature(models.get(config.model)).parameters:
        opts["pretrained"] = False
    path = work / "model-train-init.json"
    zoo.get(config.model, **opts).save(path)
    return str(path)


def _skip_untrainable(state: _Run, todo: list[Cell]) -> list[Cell]:
    """Training cells of a backend without a trainer (or at a precision the trainers lack) are
    recorded as skipped with the reason, never started; the other cells are returned."""
    from dlbench.execution.precision import skipped_cell_record
    from dlbench.execution.scenarios.training import cannot_train, precision_unsupported

    keep = []
    for c in todo:
        why = None
        if c.scenario == "training":
            why = cannot_train(c.backend) or precision_unsupported(c.precision)
        if why is None:
            keep.append(c)
            continue
        state.record(skipped_cell_record(c.to_dict(), why))
        state.warn(f"Skipped {c.id}: {why}")
    return keep


def _training_summary(state: _Run) -> None:
    """The step-loss agreement of the training cells (``doc["training"]``); a disagreement
    marks the cell INVALID and is said on screen."""
    from dlbench.execution.scenarios.training import training_agreement

    summary = training_agreement(state.doc)
    state.doc["training"] = summary
    for message in summary["disagreements"]:
        state.warn(message)


def _record_machine(rec: dict[str, Any], before: dict[str, Any] | None) -> None:
    """The machine's load, CPU frequency and throttling before and after the cell (issue 22),
    and a validity note (not a reason) when it was busy or throttled."""
    if isinstance(rec.get("machine"), dict):  # issue 18: measured on the Ray node of the cell
        before, after = rec["machine"]["before"], rec["machine"]["after"]
    else:
        after = environment.machine_load()
        before = before or after
    rec["machine"] = {"before": before, "after": after}
    notes = environment.cell_load_notes(before, after)
    if notes and isinstance(rec.get("validity"), dict):
        rec["validity"].setdefault("notes", []).extend(notes)


def _input_check(spec: Any, info: Any) -> dict[str, Any] | None:
    """What input a model with ``metadata["preprocessing"]`` (the ImageNet-size zoo) expects,
    against the dataset's transform: ``{"expected", "dataset", "match", "message"}``; None for
    a model that says nothing."""
    want = (spec.metadata or {}).get("preprocessing")
    if not isinstance(want, dict):
        return None
    got = dict(getattr(info, "transform", None) or {})
    c, h, w = (list(spec.input_shape) + [None, None, None])[:3]
    expects = (
        f"{spec.name} expects {c}x{h}x{w} RGB images normalised with mean "
        f"{tuple(want.get('mean', ()))} and std {tuple(want.get('std', ()))} (torchvision's "
        f"evaluation transform: resize {want.get('resize')}, centre crop {want.get('crop')})"
    )
    same_norm = not got or all(  # a transform not described (synthetic data) is no mismatch
        k in got and np.allclose(got[k], want[k], atol=1e-6) for k in ("mean", "std") if k in want
    )
    same_size = tuple(info.input_shape) == tuple(spec.input_shape)
    match = same_norm and same_size
    if got:
        gives = (
            f"dataset {info.name!r} gives {'x'.join(map(str, info.input_shape))}"
            + (f" (resize {got['resize']}, centre crop {got['crop']})" if "crop" in got else "")
            + (f", mean {tuple(got['mean'])}, std {tuple(got['std'])}" if "mean" in got else "")
        )
    else:
        gives = f"dataset {info.name!r} does not describe its transform"
    if match:
        message = f"Input: {expects}; {gives}" + (": they match." if got else ".")
    else:
        message = (
            f"Input mismatch: {expects}; {gives}. Accuracy of trained weights would be "
            "meaningless (timings are unaffected); for an image folder the default transform "
            "(resize 256, crop 224, ImageNet mean/std) is the expected one."
        )
    return {"expected": want, "dataset": got, "match": match, "message": message}


def _check_original(
    state: _Run, inputs: np.ndarray, reference: np.ndarray, workdir: Path, env: dict[str, str]
) -> None:
    """``--model x.onnx``: the original file in ONNX Runtime (a worker job) on the parity batch,
    compared with the imported spec's float64 reference (``doc["model"]["onnx_original"]
    ["parity"]``); its outputs are kept for each backend's second parity entry."""
    from dlbench.analysis.parity import compare
    from dlbench.analysis.parity import failed as parity_failed
    from dlbench.execution.onnx_source import original_outputs

    config = state.config
    entry = state.doc["model"]["onnx_original"]
    out, info = original_outputs(config.model, inputs, workdir, env, config.cell_timeout, config)
    entry.update(info)
    if out is None:
        state.warn(f"The import was not checked against the original ONNX file: {info['error']}")
        state.save()
        return
    parity = _parity(compare, out, reference, config.parity_tolerance)
    entry["parity"] = parity
    state.original = out
    if parity_failed(parity):
        state.warn(
            f"IMPORT MISMATCH: the imported model differs from {Path(config.model).name} run in "
            f"ONNX Runtime: {parity.get('reason') or ''}max abs diff "
            f"{parity.get('max_abs_diff')}, argmax agreement {parity.get('argmax_agreement')}. "
            "Every backend runs the imported model, so its timings compare another computation."
        )
    state.save()


def _parity_at(
    compare: Any, reference: np.ndarray, out: np.ndarray, tolerance: float, precision: str
) -> dict[str, Any]:
    """Parity of a row at ``precision``: float32 within the run's tolerance; others within
    their own (:data:`dlbench.execution.precision.TOLERANCES`), judged by its rule."""
    if precision == "float32":
        return _parity(compare, reference, out, tolerance)
    loose = precision_tolerance(precision, tolerance) or 1.0
    return parity_verdict(_parity(compare, reference, out, loose), precision)


def _parity(
    compare: Any, reference: np.ndarray, out: np.ndarray, tolerance: float
) -> dict[str, Any]:
    if out.shape != reference.shape:
        return {
            "ok": False,
            "tolerance": tolerance,
            "max_abs_diff": None,
            "max_rel_diff": None,
            "argmax_agreement": None,
            "reason": f"output shape {tuple(out.shape)} differs from the reference "
            f"{tuple(reference.shape)}; ",
        }
    if not np.all(np.isfinite(out)):
        return {
            "ok": False,
            "tolerance": tolerance,
            "max_abs_diff": None,
            "max_rel_diff": None,
            "argmax_agreement": None,
            "reason": "outputs contain NaN or inf; ",
        }
    return compare(reference, out, tolerance=tolerance)
