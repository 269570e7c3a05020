"""Training in the current process: pick the backend's trainer, run every fold.

:func:`run_training_job` is the ``train`` job of the one worker entry point
(``python -m dlbench.execution.worker``), run in a fresh process per backend; tests call
:func:`run_folds` directly.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.model.spec import ModelSpec
from dlbench.train.config import TrainConfig
from dlbench.train.loop import fit
from dlbench.train.plan import Fold, fold_data


class _Trainers(Mapping[str, str]):
    """Backend -> its ``train`` capability (``"module:make_trainer"``): a live view of the
    registry, so a backend added by entry point trains like a built-in."""

    def _names(self) -> list[str]:
        from dlbench.registry import backends

        return backends.with_capability("train")

    def __getitem__(self, name: str) -> str:
        from dlbench.registry import backends

        if name not in self._names():
            raise KeyError(name)
        return backends.manifest(name).capabilities["train"]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


#: backend -> ``"module:make_trainer"`` (same signature in each)
TRAINERS: Mapping[str, str] = _Trainers()


def make_trainer_fn(framework: str) -> Callable[..., Any]:
    """The backend's ``make_trainer(spec, config, device)`` (its manifest's ``train``)."""
    from dlbench.registry import backends

    if framework not in TRAINERS:
        raise ConfigError(
            f"Expected a backend with a training implementation, one of {sorted(TRAINERS)}. "
            f"Received: {framework!r}"
        )
    return backends.capability(framework, "train")


def trainer_module(framework: str) -> Any:
    """The module holding the backend's ``make_trainer`` (kept for callers that want it)."""
    make_trainer_fn(framework)
    return importlib.import_module(TRAINERS[framework].partition(":")[0])


def run_folds(
    framework: str,
    spec: ModelSpec,
    config: TrainConfig,
    folds: list[Fold],
    data: dict[str, np.ndarray],
    num_classes: int,
    device: str = "cpu",
    on_epoch: Callable[[int, int, dict[str, Any]], None] | None = None,
    meter: Any = None,
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Train a fresh model (the spec's initial weights) on each fold.

    Returns one ``(record, trained_params)`` per fold; ``record`` is JSON-safe and holds
    ``build_time_s`` besides :func:`dlbench.train.loop.fit`'s fields.
    """
    make_trainer = make_trainer_fn(framework)
    out = []
    for k, fold in enumerate(folds):
        t0 = time.perf_counter()
        trainer = make_trainer(spec, config, device)
        build = time.perf_counter() - t0
        cb = None if on_epoch is None else (lambda e, row, k=k: on_epoch(k, e, row))
        record = fit(
            trainer, config, fold_data(fold, data), fold.orders, fold.lrs, num_classes, cb, meter
        )
        precision = trainer_precision(framework, trainer, config)
        if precision is not None:
            record["precision"] = precision
        if meter is not None:
            record["energy"] = _training_energy(record.pop("energy_readings"), record, config)
        record.update(
            fold=k, build_time_s=build, n_train=len(fold.train_idx), n_val=len(fold.val_idx)
        )
        out.append((record, trainer.export_params()))
    return out


def trainer_precision(framework: str, trainer: Any, config: TrainConfig) -> dict[str, Any] | None:
    """What precision a trainer ran after its steps (its ``precision_info()``: the idiom, the
    dtypes its step's matrix products ran in, the loss scale), checked: raises
    :class:`~dlbench.errors.BackendError` when the step did not compute in
    ``config.precision``. None for a trainer that does not report it."""
    info = getattr(trainer, "precision_info", None)
    return None if info is None else _checked_precision(framework, config, info())


def _checked_precision(framework: str, config: TrainConfig, info: dict[str, Any]) -> dict[str, Any]:
    """The trainer's precision record, refused (``BackendError``) when its step's matrix
    products did not run in the precision asked for; a partial one carries a ``warning``."""
    from dlbench.backends.common.mixed_precision import check_observed

    warning = check_observed(framework, config, info.get("observed_compute_dtypes"))
    if warning:
        import warnings

        warnings.warn(warning, stacklevel=2)
        info["warning"] = warning
    return info


def _train_settings(settings: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The backend's settings with the training step's precision: the backend is set up in
    float32 (TF32 off, full float32 matrix products for what stays float32); the step itself
    computes in ``config.precision`` (details in each fold's ``precision`` record)."""
    return {
        **settings,
        "backend_precision": settings.get("precision"),
        "precision": config.precision,
    }


def _training_energy(readings: list[Any], record: dict[str, Any], config: TrainConfig) -> Any:
    """The fold's energy over its training steps (every epoch's window, evaluations left out):
    joules per sample, per step and per epoch, or why there is none."""
    from dlbench.execution.energy import combine, energy_record

    steps = int(record["steps"])
    return energy_record(
        combine(readings),
        steps * config.batch_size,
        steps=steps,
        epochs=len(readings),
    )


def _energy_monitor(device: str) -> Any:
    import os

    from dlbench.execution.energy import POWERCAP_ROOT, EnergyMonitor

    root = os.environ.get("DLBENCH_POWERCAP_ROOT", POWERCAP_ROOT)
    try:
        return EnergyMonitor.default(rapl_root=root, gpu=not device.startswith("cpu"))
    except Exception:  # energy is a bonus: never let it cost the run
        return None


def run_training_job(job: dict[str, Any], events: Any) -> int:
    """A ``train`` job: one backend trained on every fold of a saved plan, in this process.

    Events: ``ready`` (versions, settings), ``epoch`` (fold, epoch, metrics), ``fold`` (the
    fold's full record), ``fatal`` (an error), ``done``.
    """
    import os
    import traceback
    from pathlib import Path

    from dlbench.execution.memory import peak_rss_bytes
    from dlbench.model.backend import get_backend
    from dlbench.train.plan import load_plan
    from dlbench.train.trainable import export_spec

    try:
        name, device = job["backend"], job["device"]
        config = TrainConfig.from_dict(job["config"])
        make_trainer_fn(name)  # a clear error for a backend without training
        backend = get_backend(
            name,
            intra_op_threads=config.intra_op_threads,
            inter_op_threads=config.inter_op_threads,
            precision="float32",
        )  # applies the thread and precision settings in this process
        spec = ModelSpec.load(job["spec_path"])
        folds, data = load_plan(job["plan_path"])
        events.emit(
            {
                "type": "ready",
                "versions": backend.versions(),
                "settings": _train_settings(backend.settings(), config),
                "pid": os.getpid(),
            }
        )

        def on_epoch(fold: int, epoch: int, row: dict[str, Any]) -> None:
            events.emit({"type": "epoch", "fold": fold, "epoch": epoch, "row": row})

        results = run_folds(
            name,
            spec,
            config,
            folds,
            data,
            int(job["num_classes"]),
            device,
            on_epoch,
            meter=_energy_monitor(device),
        )
        for record, params in results:
            record["peak_rss_bytes"] = peak_rss_bytes()
            if job.get("save_weights"):
                k = record["fold"]
                stem = f"{spec.name}-{name}" + (f"-fold{k}" if len(folds) > 1 else "")
                trained = export_spec(
                    spec,
                    params,
                    {
                        "pretrained": True,
                        "trained": {
                            "framework": name,
                            "dataset": job.get("dataset"),
                            "fold": k,
                            "config": config.to_dict(),
                            "test_accuracy": record["final"]["test_accuracy"],
                            "val_accuracy": record["final"]["val_accuracy"],
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        },
                    },
                )
                jpath, _ = trained.save(Path(job["save_weights"]) / stem)
                record["weights"] = str(jpath)
            events.emit({"type": "fold", "record": record})
        events.emit({"type": "done", "peak_rss_bytes": peak_rss_bytes()})
        return 0
    except BaseException as exc:  # report, whatever it was
        events.emit(
            {
                "type": "fatal",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
        return 1
