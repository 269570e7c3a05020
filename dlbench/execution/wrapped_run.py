"""A wrapped (bring-your-own) detector through :func:`dlbench.run`: the same cells, records,
result file, tables and COCO summary as a zoo detector, for a model dlbench did not build.

Two ways in:

- a live object: ``dlbench.run(model=<wrapped detector>, dataset="shapes", ...)`` (or a config
  dict whose ``model`` is one), where the detector comes from
  ``get_backend(fw).wrap(native, input_shape=(3, H, W), detection=...)`` in any framework;
- an ONNX file with a declarative output contract (:class:`~dlbench.detection.OutputFields`
  in a JSON file): ``dlbench run --model det.onnx --detection-contract contract.json``, i.e.
  ``model_options={"detection_contract": <dict or path>}``; the file is wrapped by the backend
  that runs ONNX files (ONNX Runtime), with the run's backend options (threads...).

What differs from a zoo run, and is recorded (nothing silent):

- **In-process.** A live model cannot be rebuilt in a fresh worker (dlbench never pickles): its
  cells run in the calling process, on the model's own backend only. A wrapped ONNX file runs
  in-process too (in the CLI process, where no other framework is imported). Each row's settings
  say ``isolation: "in-process"`` and the run warns once.
- **No parity against a reference.** There is no ModelSpec, so no float64 NumPy reference:
  each row's ``parity`` is null with ``parity_note`` saying why. With ``via_onnx`` the detector
  is exported (:func:`dlbench.export.to_onnx`, every output by name, output-by-output parity)
  and the file runs in ONNX Runtime with the same contract as a ``<source>>onnxruntime`` row
  whose ``export`` holds that parity.
- **The contract used** is in ``doc["model"]["detection_contract"]`` (and, per row, in the
  settings' ``postprocess``).

Not supported, each a :class:`~dlbench.errors.ConfigError` before anything runs: a wrapped
classifier (export it and run the file, see the README), other backends than the model's own,
a precision other than float32, the Ray executor, ``--resume``, backend options for a live
model (give them to ``get_backend``), a non-detection dataset.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from dlbench.errors import ConfigError

__all__ = ["CONTRACT_OPTION", "is_live_model", "run_contract_file", "run_live", "wants_contract"]

#: the ``model_options`` key holding an ONNX detector's output contract (a dict or a JSON path)
CONTRACT_OPTION = "detection_contract"
ISOLATION_NOTE = (
    "in-process: a wrapped model runs in the calling process, not in a fresh worker (a live "
    "object cannot be rebuilt there)"
)
PARITY_NOTE = (
    "a wrapped model has no ModelSpec, so no float64 reference to check it against (with "
    "via_onnx, the export's own parity is in the row's 'export')"
)


def is_live_model(model: Any) -> bool:
    """Whether ``model`` is a dlbench Model object (``build`` / ``wrap``), not a name."""
    from dlbench.model.backend import Model

    return isinstance(model, Model)


def wants_contract(config: Any) -> bool:
    """Whether ``config`` runs an ONNX file with a detection contract.

    Raises:
        ConfigError: a contract for a model that is no ONNX file (a zoo detector or a saved
            spec has its own decoder).
    """
    from dlbench.execution.onnx_source import is_onnx_path

    opts = getattr(config, "model_options", None) or {}
    if CONTRACT_OPTION not in opts:
        return False
    if not is_onnx_path(config.model):
        raise ConfigError(
            "Expected an ONNX file (--model detector.onnx) with a detection contract (a zoo "
            f"detector or a saved spec decodes its own outputs). Received: model={config.model!r}"
        )
    return True


def _contract(value: Any) -> Any:
    from dlbench.detection.wrapped import DetectorOutputs

    if isinstance(value, DetectorOutputs):
        return value
    if isinstance(value, (str, os.PathLike)):
        return DetectorOutputs.from_json(value)
    return DetectorOutputs.from_dict(value, where=f"model_options[{CONTRACT_OPTION!r}]")


def _check_config(config: Any, backend: str, *, live: bool) -> None:
    what = "a wrapped detector" if live else "an ONNX detector with a contract"
    if config.backends is not None and list(config.backends) != [backend]:
        other = "export it (to_onnx) and add --via-onnx" if live else "nothing else runs it"
        raise ConfigError(
            f"Expected backends=[{backend!r}] for {what} (it runs on its own backend; {other}). "
            f"Received: backends={list(config.backends)}"
        )
    if config.precisions() != ["float32"]:
        raise ConfigError(
            f"Expected precision float32 for {what} (dlbench cannot requantize a model it did "
            f"not build). Received: {config.precision}"
        )
    if config.executor != "local":
        raise ConfigError(
            f"Expected executor 'local' for {what} (it runs in this process). Received: "
            f"{config.executor!r}"
        )
    if live and config.backend_options:
        raise ConfigError(
            "Expected no backend_options for a wrapped detector: it was built with its "
            f"backend's options (get_backend({backend!r}, ...)). Received: "
            f"{config.backend_options}"
        )
    extra = sorted(set(config.model_options) - {CONTRACT_OPTION})
    if extra:
        raise ConfigError(
            f"Expected no model_options for {what} but {CONTRACT_OPTION!r}. Received: {extra}"
        )


def _square_size(shape: Any, name: str) -> int:
    if shape is None or len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"Expected detector {name!r} to take square images (3, S, S): the detection "
            f"datasets letterbox to image_size x image_size. Received: input_shape={shape!r}"
        )
    return int(shape[1])


def run_live(
    model: Any,
    config: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_event: Any = None,
) -> dict[str, Any]:
    """Run ``config``'s cells on ``model``, a wrapped detector (``config.model`` is ignored:
    the document names the model). See the module docs.

    Raises:
        ConfigError: ``model`` is no wrapped detector, or a setting it cannot honour.
    """
    from dlbench.execution.config import BenchmarkConfig

    if getattr(model, "detection", None) is None:
        raise ConfigError(
            "Expected a wrapped detector (get_backend(fw).wrap(model, input_shape=..., "
            "detection=...)) as dlbench.run's model object. Received: "
            f"{type(model).__name__} {getattr(model, 'name', '')!r} without a detection "
            "contract. A classifier goes through a file: to_onnx(model, 'net.onnx') (or "
            "dlbench.spec's from_<framework> converters), then run(model='net.onnx')"
        )
    if isinstance(config, dict):
        config = BenchmarkConfig.from_dict({**config, "model": model.name})
    name = model.backend.name
    _check_config(config, name, live=True)
    size = _square_size(getattr(model, "input_shape", None), model.name)
    return _run_rows(
        config, model, size, out=out, resume=resume, on_event=on_event, source=None, live=True
    )


def run_contract_file(
    config: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_event: Any = None,
) -> dict[str, Any]:
    """Run ``config.model`` (an ONNX detector file) with the output contract in
    ``config.model_options["detection_contract"]`` on the backend that runs ONNX files.

    Raises:
        ConfigError: a bad contract, no ONNX runner, or a setting it cannot honour.
    """
    from dlbench.registry import backends as registry

    contract = _contract(config.model_options[CONTRACT_OPTION])
    runner = registry.onnx_runtime()
    if runner is None:
        raise ConfigError("Expected a registered backend that runs ONNX files. Received: none")
    if config.via_onnx:
        raise ConfigError(
            "Expected no via_onnx for an ONNX file (it already runs in ONNX Runtime). Received: "
            "via_onnx=True"
        )
    _check_config(config, runner, live=False)
    message = registry.entry(runner).missing_message()
    if message:
        raise ConfigError(message)
    size = (config.dataset_options or {}).get("image_size")
    source = {"path": config.model, "contract": contract, "runner": runner}
    return _run_rows(
        config, None, size, out=out, resume=resume, on_event=on_event, source=source, live=False
    )


def _run_rows(
    config: Any,
    model: Any,
    size: int | None,
    *,
    out: Any,
    resume: bool,
    on_event: Any,
    source: dict[str, Any] | None,
    live: bool,
) -> dict[str, Any]:
    from dlbench import datasets
    from dlbench.execution import environment
    from dlbench.execution import results as res
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.onnx_source import file_summary
    from dlbench.execution.runner import _Run, _settings_warnings
    from dlbench.execution.scenarios.detection import DETECTION_DATASETS, per_image_accuracy

    if resume:
        raise ConfigError(
            "Expected no resume for a wrapped detector (its cells run in this process, from "
            "the object). Received: resume=True"
        )
    if live and config.devices not in ([model.device], BenchmarkConfig().devices):
        raise ConfigError(
            f"Expected devices=[{model.device!r}] (the wrapped detector's). Received: "
            f"{config.devices}"
        )
    if not live and len(config.devices) != 1:
        raise ConfigError(
            f"Expected one device for an ONNX detector with a contract. Received: {config.devices}"
        )
    opts = dict(config.dataset_options or {})
    if size is not None and opts.get("image_size", size) != size:
        raise ConfigError(
            f"Expected dataset option image_size={size} (the detector's input size). Received: "
            f"image_size={opts['image_size']}"
        )
    if size is not None and config.dataset in DETECTION_DATASETS:
        opts["image_size"] = size  # the letterbox is the model's input: said in the config
    config = per_image_accuracy(dataclasses.replace(config, dataset_options=opts))
    dataset = datasets.load(config.dataset, root=config.dataset_root, split=config.split, **opts)
    info = dataset.info
    if str(getattr(info, "task", "")) != "detection":
        raise ConfigError(
            f"Expected a detection dataset (coco, shapes) for a wrapped detector. Received: "
            f"dataset {info.name!r} (task {getattr(info, 'task', None) or 'classification'})"
        )
    cfg_dict = config.to_dict()
    if live:
        cfg_dict["model_options"] = {**cfg_dict.get("model_options", {})}
    else:  # the contract as data, not as the path it was read from
        contract = source["contract"] if source else None
        cfg_dict["model_options"] = {CONTRACT_OPTION: contract.to_dict()} if contract else {}
    doc = res.new_document(cfg_dict, environment.capture())
    out_path = Path(out) if out is not None else None
    state = _Run(config, doc, out_path, on_event or (lambda kind, payload: None))
    doc["dataset"] = info.to_dict()
    if source is not None:  # the ONNX file, wrapped now with the run's backend options
        from dlbench.execution.worker import backend_options
        from dlbench.model.backend import get_backend

        runner = source["runner"]
        t0 = time.perf_counter()
        backend = get_backend(runner, **backend_options(config, runner))
        model = backend.wrap(
            source["path"],
            device=config.devices[0],
            name=Path(source["path"]).stem,
            input_shape=tuple(info.input_shape),
            detection=source["contract"],
        )
        build = time.perf_counter() - t0
    else:
        build = None
    pipeline = model.detection
    doc["model"] = {
        "name": model.name,
        "fingerprint": None,
        "stats": {},
        "wrapped": {
            "backend": model.backend.name,
            "class": type(model).__name__,
            "input_shape": list(model.input_shape),
            "in_process": True,
            "from": "a live object (dlbench.run(model=...))" if live else "an ONNX file",
        },
        "detection_contract": pipeline.decoder.to_dict(),
    }
    if source is not None:
        doc["model"]["onnx_file"] = file_summary(source["path"])
    rows: list[tuple[str, Any, dict[str, Any]]] = [(model.backend.name, model, {})]
    state.warn(f"Wrapped detector {model.name!r}: {ISOLATION_NOTE}.")
    try:
        _run_all(state, config, model, rows, build, dataset, live)
    except KeyboardInterrupt:
        doc["status"] = "interrupted"
        state.save()
        raise
    doc["model"]["detection_contract"] = pipeline.decoder.to_dict()  # its counts after the run
    for message in _settings_warnings(doc):
        state.warn(message)
    from dlbench.report.detection import detection_summary

    summary = detection_summary(doc)
    if summary:
        doc["detection"] = summary
    doc["status"] = "complete"
    state.save()
    if state.unsaved:
        raise res.ResultWriteError(state.unsaved, doc)
    return doc


def _run_all(
    state: Any, config: Any, model: Any, rows: list, build: float | None, dataset: Any, live: bool
) -> None:
    """Every row's cells, one after the other (the via-ONNX row exported first)."""
    doc = state.doc
    with _workdir() as workdir:
        if live and config.via_onnx:
            rows.append(_via_onnx_row(state, config, model, workdir))
        names = [r[0] for r in rows]
        run_config = dataclasses.replace(
            config, backends=names, via_onnx=False, devices=[model.device]
        )
        cells = run_config.cells()
        state.emit("plan", {"cells": [c.id for c in cells], "todo": [c.id for c in cells]})
        state.save()
        for row, row_model, extra in rows:
            binfo = _row_info(row_model, build if row_model is model else extra.get("build"))
            binfo.update({k: v for k, v in extra.items() if k != "build"})
            doc["backends"].setdefault(row, {})[model.device] = binfo
            if row_model is None:
                for c in (c for c in cells if c.backend == row):
                    state.fail(c, binfo["error"])
                continue
            message = _threads_not_applied(config, row, binfo["settings"])
            if message:
                binfo["settings"]["run_threads_not_in_force"] = message
                state.warn(message)
            state.save()
            for cell in (c for c in cells if c.backend == row):
                _run_cell(state, run_config, cell, row_model, dataset, binfo)


class _workdir:
    """A temporary folder for the via-ONNX export (removed at the end)."""

    def __enter__(self) -> Path:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="dlbench-wrapped-")
        return Path(self._tmp.name)

    def __exit__(self, *exc: Any) -> None:
        self._tmp.cleanup()


def _threads_not_applied(config: Any, row: str, settings: dict[str, Any]) -> str | None:
    """The run's thread counts against those a row reports in force (a live model's backend
    was made by its user, with its own): a difference is said, never silent."""
    differ = []
    for key in ("intra_op_threads", "inter_op_threads"):
        asked = getattr(config, key)
        got = settings.get(f"{key}_in_force", settings.get(key))
        if got is not None and got != asked:
            differ.append(f"{key}: run {asked}, in force {got}")
    if not differ:
        return None
    return (
        f"The run's thread settings are not in force for {row} (a wrapped model keeps the "
        f"options of the backend it was made with, get_backend({row!r}, intra_op_threads=..., "
        f"inter_op_threads=...)): {'; '.join(differ)}"
    )


def _row_info(model: Any, build: float | None) -> dict[str, Any]:
    if model is None:
        return {"status": "failed", "parity": None}
    settings = {**model.settings(), "isolation": "in-process"}
    return {
        "status": "ok",
        "error": None,
        "versions": model.backend.versions(),
        "settings": settings,
        "build_time_s": build,
        "weight_bytes": model.weight_bytes(),
        "parity": None,
        "parity_note": PARITY_NOTE,
    }


def _via_onnx_row(
    state: Any, config: Any, model: Any, workdir: Path
) -> tuple[str, Any, dict[str, Any]]:
    """``<source>>onnxruntime``: the detector exported (every output by name, checked output
    by output) and the file run in ONNX Runtime with the same contract."""
    from dlbench.export import to_onnx
    from dlbench.model.backend import get_backend
    from dlbench.registry import backends as registry

    src = model.backend.name
    runner = registry.onnx_runtime()
    if runner is None:
        raise ConfigError(
            "Expected a backend that runs ONNX files for the via-ONNX row. Received: none "
            "registered (pip install 'dlbench[onnx]')"
        )
    row = f"{src}>{runner}"
    path = workdir / f"{src}.onnx"
    t0 = time.perf_counter()
    try:
        report = to_onnx(model, path, force=True)
        from dlbench.execution.worker import backend_options

        ort = get_backend(runner, **backend_options(config, runner)).wrap(
            path, device=model.device, name=model.name, detection=model.detection.decoder
        )
    except Exception as exc:
        error = f"ONNX export of the wrapped detector from {src} failed: {exc}"
        state.warn(error)
        return row, None, {"error": error}
    from dlbench.analysis.parity import failed

    export = {
        k: getattr(report, k)
        for k in ("source", "exporter", "opset", "file_bytes", "params", "output_names")
    }
    export.update(parity=report.parity, versions=report.versions)
    export["export_seconds"] = report.export_seconds
    if failed(report.parity):
        state.warn(
            f"PARITY FAILED for {row}: the export differs from {src} "
            f"({report.parity.get('failed_output') or ''} max abs diff "
            f"{report.parity.get('max_abs_diff')}). Its timings compare a different computation."
        )
    return row, ort, {"export": export, "build": time.perf_counter() - t0}


def _run_cell(state: Any, config: Any, cell: Any, model: Any, dataset: Any, binfo: dict) -> None:
    from dlbench.execution import environment, memory
    from dlbench.execution import results as res
    from dlbench.execution.runner import _record_machine
    from dlbench.execution.scenarios import run_scenario

    state.emit("start", {"id": cell.id})
    before = environment.machine_load()
    started = time.time()
    hooks = {"detection": model.detection} if cell.scenario == "accuracy" else {}
    try:
        record = run_scenario(
            cell.scenario,
            model,
            dataset,
            batch_size=cell.batch_size,
            options=config.scenario_options(cell.scenario),
            **hooks,
        )
        record["memory"] = memory.snapshot(model)
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        state.fail(cell, f"{type(exc).__name__}: {text}")
        return
    event = {"record": record, "started": started, "finished": time.time()}
    rec = res.cell_record(cell.to_dict(), event, binfo)
    _record_machine(rec, before)
    state.record(rec)
