"""The training worker: one framework in a fresh interpreter.

Started by :mod:`dlbench.train.runner` as ``python -m dlbench.train.worker JOB.json`` with the
thread environment variables already set (:func:`dlbench.execution.runner.thread_env`), so they are in
force before the framework is imported. Events are JSON lines appended (and flushed) to the
job's event file: ``ready`` (versions, settings), ``epoch`` (fold, epoch, metrics), ``fold``
(the fold's full record), ``fatal`` (an error), ``done``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from dlbench.execution.worker import _Events, peak_rss_bytes


def run_job(job: dict[str, Any]) -> int:
    events = _Events(job["events"])
    try:
        from dlbench.model.spec import ModelSpec
        from dlbench.registry import backends as backend_registry
        from dlbench.train.config import TrainConfig
        from dlbench.train.local import run_folds, trainer_module
        from dlbench.train.plan import load_plan
        from dlbench.train.trainable import export_spec

        name, device = job["backend"], job["device"]
        config = TrainConfig.from_dict(job["config"])
        trainer_module(name)  # a clear error for a backend without training
        cls = backend_registry.get(name)
        backend = cls(
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
                "settings": backend.settings(),
                "pid": os.getpid(),
            }
        )

        def on_epoch(fold: int, epoch: int, row: dict[str, Any]) -> None:
            events.emit({"type": "epoch", "fold": fold, "epoch": epoch, "row": row})

        results = run_folds(
            name, spec, config, folds, data, int(job["num_classes"]), device, on_epoch
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dlbench.train.worker JOB.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    return run_job(job)


if __name__ == "__main__":
    sys.exit(main())
