"""The ``training`` scenario: a model trained for some steps (or epochs) in a benchmark cell.

One cell per (backend, device, batch size, precision). The worker trains the cell's model with
the backend's own trainer (``dlbench.backends.<framework>.training``, reached through
:mod:`dlbench.train.local`; the loop is :func:`dlbench.train.loop.fit`: there is one trainer, not
two) on the dataset's ``train`` split, from the spec's seeded initial weights. The plan (hold-out
split, every step's sample indices, every step's learning rate) is computed in NumPy from the
run's seed, so each worker computes the same arrays; its fingerprint is recorded and checked
across backends.

What a cell records:

* ``timing``: the per-step times (each ``train_step`` call alone, ending when the loss is on the
  host) after the warm-up steps (``warmup_steps``, 5 by default: tracing / compilation), as the
  other timed scenarios record calls: ``stats`` (median, p90, p99, CI...), ``throughput``
  (samples/s over the measured steps), ``first_call_s`` (the first, compiling, step);
  ``mode`` is ``train_step``.
* ``training``: the loss of every step, every step's time, the learning curves per epoch, final
  train / validation / test loss and accuracy, time and epochs to ``target_accuracy``, the plan's
  fingerprint, the training configuration and build time; ``agreement`` (set by the run, see
  :func:`training_agreement`).
* ``metrics``: ``final_loss`` (the last step's), ``train_accuracy``, ``val_accuracy``,
  ``test_accuracy``.

Backends without a trainer (ONNX Runtime, the NumPy reference, LiteRT) are skipped with the
reason (:func:`cannot_train`), never failed. With ``train_steps`` (default
:data:`~dlbench.execution.scenarios.options.DEFAULT_TRAIN_STEPS`) the model trains on the samples
those steps draw and is evaluated once at the end; with ``epochs`` it trains on the whole train
split and is evaluated after each epoch (time to accuracy is read there). Evaluations use at most
``eval_limit`` samples of the validation and test sets (the first ones), never inside the timing.

Agreement: after the run, :func:`training_agreement` compares the first
:data:`dlbench.train.runner.PARITY_STEPS` step losses of every backend with those of a reference
backend (torch when it trained, else the first) at the same device, batch size and precision;
a difference above the tolerance marks the cell INVALID (kept, said on screen).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.scenarios._common import validity

#: The scenario's name.
TRAINING = "training"


@dataclass
class TrainingContext:
    """What the worker gives a training cell besides the model: the spec (the initial weights),
    where the dataset's train split is, the cell's precision and the run's threads."""

    spec: Any
    dataset: str
    dataset_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"
    intra_op_threads: int = 1
    inter_op_threads: int = 1


def cannot_train(backend: str) -> str | None:
    """Why ``backend`` cannot run a training cell (no ``train`` capability), or None."""
    from dlbench.registry import backends

    try:
        trainers = backends.with_capability("train")
    except Exception as exc:  # pragma: no cover - a broken plugin
        return f"its manifest cannot be read ({exc})"
    if backends.composite_parts(backend) is not None:
        return "a via-ONNX row runs an exported inference graph; it has no training step"
    if backend not in trainers:
        return (
            f"{backend} has no training implementation (backends that train: "
            f"{', '.join(trainers) or 'none'})"
        )
    return None


def precision_unsupported(precision: str) -> str | None:
    """Why a training cell cannot run at ``precision``, or None: int8 never trains; a reduced
    float precision needs :class:`dlbench.train.TrainConfig` to have a ``precision`` field."""
    if precision == "float32":
        return None
    if precision not in ("bfloat16", "float16"):
        return f"training at {precision} is not defined (float32, bfloat16, float16)"
    from dlbench.train.config import TrainConfig

    if "precision" not in {f.name for f in fields(TrainConfig)}:
        return f"mixed-precision training ({precision}) is not implemented by the trainers yet"
    return None


def train_config(
    options: Any, batch_size: int, precision: str, intra: int, inter: int
) -> tuple[Any, int | None]:
    """The :class:`~dlbench.train.TrainConfig` of a cell, and its step count (None: epochs)."""
    from dlbench.execution.scenarios.options import DEFAULT_TRAIN_STEPS
    from dlbench.train.config import TrainConfig

    data = {
        "intra_op_threads": intra,
        "inter_op_threads": inter,
        "val_fraction": 0.1,
        **options.train_options,
        "batch_size": batch_size,
        "seed": options.seed,
        "folds": 1,
        "target_accuracy": options.target_accuracy,
        "epochs": options.epochs or 1,
    }
    if precision != "float32":
        data["precision"] = precision
    steps = None if options.epochs is not None else (options.train_steps or DEFAULT_TRAIN_STEPS)
    if steps is not None and data.get("warmup_epochs"):
        raise ConfigError(
            "Expected `epochs` for a warm-up in epochs (a step-count run has none). "
            f"Received: warmup_epochs={data['warmup_epochs']!r} with train_steps={steps}"
        )
    return TrainConfig.from_dict(data), steps


_DATA_CACHE: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}


def _train_data(ctx: TrainingContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The train and test splits as arrays (loaded once per worker)."""
    import json

    from dlbench.train.runner import load_data

    key = json.dumps([ctx.dataset, ctx.dataset_root, ctx.dataset_options], sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_data(ctx.dataset, ctx.dataset_root, ctx.dataset_options)
    return _DATA_CACHE[key]


def plan_cell(
    data: dict[str, np.ndarray], config: Any, steps: int | None, eval_limit: int | None
) -> tuple[Any, dict[str, np.ndarray], np.ndarray, np.ndarray, str]:
    """``(fit_config, fit_data, orders, lrs, fingerprint)`` of one training cell.

    Epochs: the hold-out plan of :func:`dlbench.train.plan.plan_folds`. Steps: that plan's
    epochs concatenated and cut at ``steps`` batches, trained as one pass over the samples those
    steps draw (evaluated once, at the end). Validation and test sets: their first
    ``eval_limit`` samples. The fingerprint hashes everything a backend is given.
    """
    from dataclasses import replace

    from dlbench.train.plan import fold_data, plan_folds, steps_per_epoch

    if steps is not None:  # as many epochs of the hold-out plan as the steps need
        n_pool = len(plan_folds(data["y_train"], replace(config, epochs=1))[0].train_idx)
        per_epoch = steps_per_epoch(n_pool, config)
        epochs = max(1, math.ceil(steps / per_epoch))
        config = replace(config, epochs=epochs, warmup_epochs=0.0)
    fold = plan_folds(data["y_train"], config)[0]
    val_idx = fold.val_idx[:eval_limit] if eval_limit is not None else fold.val_idx
    orders, lrs = fold.orders, fold.lrs
    fit_config = config
    train_idx = fold.train_idx
    if steps is not None:
        per_epoch = len(lrs) // config.epochs
        used = np.concatenate(
            [o[: per_epoch * config.batch_size] for o in orders[: config.epochs]]
        )[: steps * config.batch_size]
        uniq, inverse = np.unique(used, return_inverse=True)
        train_idx = fold.train_idx[uniq]  # only the samples the steps draw (no copy of the rest)
        orders = inverse.astype(np.int64)[None, :]
        lrs = lrs[:steps]
        fit_config = replace(config, epochs=1, drop_last=True, warmup_epochs=0.0)
    fd = fold_data(replace(fold, train_idx=train_idx, val_idx=val_idx), data)
    if eval_limit is not None and "x_test" in fd:
        fd["x_test"], fd["y_test"] = fd["x_test"][:eval_limit], fd["y_test"][:eval_limit]
    h = hashlib.sha256()
    for arr in (fold.train_idx, fold.val_idx, orders, lrs, fd["y_train"]):
        h.update(np.ascontiguousarray(arr).tobytes())
    return fit_config, fd, orders, lrs, h.hexdigest()[:16]


def training(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int,
    train_steps: int | None = None,
    epochs: int | None = None,
    target_accuracy: float | None = None,
    eval_limit: int | None = 1024,
    train_options: dict[str, Any] | None = None,
    seed: int = 0,
    context: TrainingContext | None = None,
) -> dict[str, Any]:
    """Training: step time, samples/s, the loss of every step and the final accuracies.

    Validity: every step's loss finite, at least one step measured after the warm-up steps, on
    real (not synthetic) data for the accuracies (a note); the step-loss agreement with the
    reference backend is added by the run (:func:`training_agreement`).
    """
    from dlbench.analysis.stats import summarize
    from dlbench.execution.memory import peak_rss_bytes
    from dlbench.execution.scenarios.options import TrainingOptions
    from dlbench.train.local import make_trainer_fn, trainer_precision
    from dlbench.train.loop import fit

    if context is None:
        raise ConfigError(
            "Expected the training context (spec, dataset) from the worker for the training "
            "scenario. Received: context=None"
        )
    name = model.backend.name
    why = cannot_train(name) or precision_unsupported(context.precision)
    if why:
        raise ConfigError(f"Expected a backend and precision that can train. Received: {why}")
    opts = TrainingOptions(
        train_steps=train_steps,
        epochs=epochs,
        target_accuracy=target_accuracy,
        eval_limit=eval_limit,
        train_options=dict(train_options or {}),
        seed=seed,
    )
    config, steps = train_config(
        opts,
        batch_size,
        context.precision,
        context.intra_op_threads,
        context.inter_op_threads,
    )
    data, info = _train_data(context)
    fit_config, fd, orders, lrs, fingerprint = plan_cell(data, config, steps, eval_limit)
    num_classes = int(info["train"]["num_classes"])
    t0 = time.perf_counter()
    trainer = make_trainer_fn(name)(context.spec, config, model.device)
    build = time.perf_counter() - t0
    rec = fit(trainer, fit_config, fd, orders, lrs, num_classes)
    # what the step really ran in, checked (a step not in the cell's precision is refused)
    ran_in = trainer_precision(name, trainer, fit_config)
    measured = rec["step_times_s"][rec["warmup_steps"] :]
    losses = [float(x) for x in rec["step_losses"]]
    reasons, notes = [], []
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    if bad:
        reasons.append(f"the loss is not finite from step {bad[0]} (diverged)")
    if not measured:
        reasons.append(
            f"no step measured: {rec['steps']} steps, all of them warm-up "
            f"(warmup_steps={config.warmup_steps})"
        )
    if dataset.info.synthetic or info["train"].get("synthetic"):
        notes.append("synthetic data: the accuracies mean nothing (step time and losses do)")
    if steps is not None and target_accuracy is not None:
        notes.append(f"{steps} steps: the target accuracy is checked once, after the last step")
    timing = None
    if measured:
        total = float(sum(measured))
        timing = {
            "mode": "train_step",
            "batch_size": batch_size,
            "n": len(measured),
            "wall_time_s": total,
            "throughput": batch_size * len(measured) / total if total > 0 else None,
            "first_call_s": float(rec["first_step_s"]),
            "warmup_calls": int(rec["warmup_steps"]),
            "warmup_reason": "fixed",
            "stop_reason": "steps",
            "stats": summarize(measured),
            "samples_s": [float(x) for x in measured],
        }
    final = rec["final"]
    train_rec = {
        "steps": rec["steps"],
        "epochs": fit_config.epochs if steps is None else None,
        "requested_steps": steps,
        "samples": rec["steps"] * batch_size,
        "step_losses": losses,
        "step_times_s": [float(x) for x in rec["step_times_s"]],
        "warmup_steps": rec["warmup_steps"],
        "first_step_s": rec["first_step_s"],
        "epoch_times_s": rec["epoch_times_s"],
        "train_time_s": rec["train_time_s"],
        "build_time_s": build,
        "target_accuracy": target_accuracy,
        "time_to_accuracy_s": rec["time_to_accuracy_s"],
        "epochs_to_accuracy": rec["epochs_to_accuracy"],
        "curves": rec["curves"],
        "final": final,
        "diagnosis": rec["diagnosis"],
        "n_train": int(len(fd["y_train"])),
        "n_val": int(len(fd.get("y_val", ()))),
        "n_test": int(len(fd.get("y_test", ()))),
        "plan_fingerprint": fingerprint,
        "precision": context.precision,
        "precision_in_force": ran_in,
        "config": config.to_dict(),
        "peak_rss_bytes": peak_rss_bytes(),
    }
    metrics = {
        "final_loss": losses[-1] if losses else None,
        "train_accuracy": final.get("train_accuracy"),
        "val_accuracy": final.get("val_accuracy"),
        "test_accuracy": final.get("test_accuracy"),
    }
    return {
        "timing": timing,
        "metrics": {k: v for k, v in metrics.items() if v is not None},
        "training": train_rec,
        "validity": validity(
            reasons,
            notes,
            min_measured_steps=1,
            finite_loss=True,
            loss_agreement_steps=_parity_steps(),
        ),
    }


def _parity_steps() -> int:
    from dlbench.train.runner import PARITY_STEPS

    return PARITY_STEPS


def loss_tolerance(precision: str) -> float:
    """The step-loss agreement tolerance at ``precision`` (max abs difference): ``dlbench
    train``'s (:data:`dlbench.train.runner.LOSS_TOLERANCES`)."""
    from dlbench.train.runner import loss_tolerance as train_tolerance

    return train_tolerance(precision)


def training_agreement(doc: dict[str, Any], steps: int | None = None) -> dict[str, Any]:
    """Compare every training cell's first ``steps`` step losses with its reference's.

    Cells are grouped by (device, batch size, precision); the reference is the first trainer
    in the manifests' ``priority`` order whose cell trained (torch when it did). Each compared
    cell gets ``training.agreement`` (``reference``, ``steps``, ``max_abs_loss_diff``,
    ``max_rel_loss_diff``, ``tolerance``, ``ok``); a cell above the tolerance, or trained on
    another plan (a different fingerprint), is marked INVALID with the reason. Returns
    ``{"groups": [...], "disagreements": [messages]}`` (the document's ``training`` entry).
    """
    from dlbench.registry import backends as registry

    steps = _parity_steps() if steps is None else steps
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for c in doc.get("cells") or []:
        if c.get("scenario") != TRAINING or not isinstance(c.get("training"), dict):
            continue
        if c.get("status") not in ("ok", "invalid"):
            continue
        key = (c["device"], int(c["batch_size"]), c.get("precision") or "float32")
        groups.setdefault(key, []).append(c)
    out: dict[str, Any] = {"steps": steps, "groups": [], "disagreements": []}
    for (device, bs, precision), cells in groups.items():
        finite = [c for c in cells if _finite_losses(c)]
        if not finite:
            continue
        order = {b: i for i, b in enumerate(registry.with_capability("train"))}
        ref = min(finite, key=lambda c: order.get(c["backend"], len(order)))
        tol = loss_tolerance(precision)
        ref_losses = np.asarray(ref["training"]["step_losses"][:steps], dtype=np.float64)
        group: dict[str, Any] = {
            "device": device,
            "batch_size": bs,
            "precision": precision,
            "reference": ref["backend"],
            "tolerance": tol,
            "backends": {},
        }
        ref["training"]["agreement"] = {"reference": ref["backend"], "is_reference": True}
        for c in cells:
            if c is ref:
                continue
            entry = _agree(c, ref, ref_losses, steps, tol)
            c["training"]["agreement"] = entry
            group["backends"][c["backend"]] = entry
            if not entry["ok"]:
                msg = (
                    f"TRAINING LOSSES DISAGREE: {c['id']} vs {ref['backend']}: "
                    f"{entry['reason']}. Its step times compare a different computation."
                )
                out["disagreements"].append(msg)
                _invalidate(c, entry["reason"])
        out["groups"].append(group)
    return out


def _finite_losses(cell: dict[str, Any]) -> bool:
    losses = cell["training"].get("step_losses") or []
    return bool(losses) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)


def _agree(
    cell: dict[str, Any], ref: dict[str, Any], ref_losses: np.ndarray, steps: int, tol: float
) -> dict[str, Any]:
    losses = np.asarray(cell["training"].get("step_losses") or [], dtype=np.float64)[:steps]
    n = min(len(losses), len(ref_losses))
    entry: dict[str, Any] = {
        "reference": ref["backend"],
        "steps": int(n),
        "tolerance": tol,
        "max_abs_loss_diff": None,
        "max_rel_loss_diff": None,
        "first_step_over": None,
        "ok": False,
        "reason": None,
    }
    fa, fb = cell["training"].get("plan_fingerprint"), ref["training"].get("plan_fingerprint")
    if fa != fb:
        entry["reason"] = f"trained on another plan (fingerprint {fa} vs {fb})"
        return entry
    if n == 0:
        entry["reason"] = "no step losses to compare"
        return entry
    d = np.abs(losses[:n] - ref_losses[:n])
    if not np.all(np.isfinite(d)):
        entry["reason"] = "a step loss is not finite"
        return entry
    entry["max_abs_loss_diff"] = float(d.max())
    entry["max_rel_loss_diff"] = float((d / np.maximum(np.abs(ref_losses[:n]), 1e-12)).max())
    over = np.flatnonzero(d > tol)
    if over.size:
        entry["first_step_over"] = int(over[0])
        entry["reason"] = (
            f"step losses differ by up to {d.max():.2e} over the first {n} steps "
            f"(tolerance {tol:g}; first over at step {int(over[0])})"
        )
    else:
        entry["ok"] = True
    return entry


def _invalidate(cell: dict[str, Any], reason: str) -> None:
    v = cell.setdefault("validity", {"valid": True, "reasons": [], "notes": []})
    text = f"step-loss agreement failed: {reason}"
    if text not in v.setdefault("reasons", []):
        v["reasons"].append(text)
    v["valid"] = False
    if cell.get("status") == "ok":
        cell["status"] = "invalid"
