"""Numeric precision as a cell dimension: names, tolerances, the fairness key, skip reasons and
the calibration data of int8 post-training quantization. Framework-free.

A benchmark may sweep ``precision = ["float32", "bfloat16", "int8"]``: every backend builds the
same ModelSpec at each precision; the float32 row of a backend is the baseline of its other rows.
Rows of different precision are labelled (``onnxruntime@int8``: :func:`row_name`) and never
compared as equals (:func:`fairness_key`). A backend that cannot run a precision on a device
raises :class:`UnsupportedPrecision` when it builds; the worker reports it and the runner records
the cells as ``skipped`` with that reason (not ``failed``).

Parity per precision (:data:`TOLERANCES`): the max abs difference to the float64 reference,
relative to the reference's output scale, and the share of samples whose argmax agrees with it.

Example:
    >>> row_name("onnxruntime", "int8"), row_name("torch", "float32")
    ('onnxruntime@int8', 'torch')
    >>> tolerance("bfloat16", 1e-4)
    0.02
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.errors import BackendError, ConfigError

#: Every precision a cell may ask for; the first is the baseline of the others.
PRECISIONS = ("float32", "bfloat16", "float16", "int8")
BASELINE = "float32"
#: Separator of a non-float32 row's name: ``onnxruntime@int8``.
ROW_SEP = "@"
#: Samples of the calibration split that int8 quantization calibrates on (default).
DEFAULT_CALIBRATION_SAMPLES = 128


@dataclass(frozen=True)
class Tolerance:
    """Parity of one precision against the float64 reference.

    Attributes:
        rel: Max abs difference allowed, as a fraction of the reference's output scale (the
            float32 tolerance is the run's ``parity_tolerance``).
        min_argmax_agreement: Share of samples whose argmax must agree with the reference's.
        why: Where the figure comes from.
    """

    rel: float | None
    min_argmax_agreement: float
    why: str


#: bfloat16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%): a few roundings through a
#: network stay within 2% of the output scale. float16 keeps 11 bits (0.05%). int8 rounds every
#: weight and activation to 1/255 of its range: logits move by several percent of their scale,
#: so only the argmax (the prediction) is held to a bound.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(None, 1.0, "the run's parity_tolerance"),
    "bfloat16": Tolerance(2e-2, 0.99, "8-bit mantissa: relative step 3.9e-3 per rounding"),
    "float16": Tolerance(5e-3, 0.99, "11-bit mantissa: relative step 4.9e-4 per rounding"),
    "int8": Tolerance(None, 0.95, "8-bit weights and activations: argmax agreement only"),
}


class UnsupportedPrecision(BackendError):
    """A backend cannot run a precision on a device: the cell is skipped with this reason."""

    def __init__(self, backend: str, precision: str, device: str, reason: str) -> None:
        self.backend, self.precision, self.device, self.reason = backend, precision, device, reason
        super().__init__(f"{backend} cannot run {precision} on {device}: {reason}")


def check_precision(value: Any) -> str:
    """``value`` if it is one of :data:`PRECISIONS`, else a ConfigError."""
    if value not in PRECISIONS:
        raise ConfigError(f"Expected precision in {PRECISIONS}. Received: precision={value!r}")
    return value


def parse_precisions(value: Any) -> list[str]:
    """``"float32,int8"``, ``["float32", "int8"]`` or ``"int8"`` -> a checked list without
    duplicates (order kept)."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)) and value:
        items = list(value)
    else:
        raise ConfigError(
            f"Expected precision to be one of {PRECISIONS} or a non-empty list of them. "
            f"Received: precision={value!r}"
        )
    for v in items:
        check_precision(v)
    if len(set(items)) != len(items):
        raise ConfigError(f"Expected precisions without duplicates. Received: precision={value!r}")
    return items


def row_name(backend: str, precision: str | None) -> str:
    """The name of a backend's row at a precision: the backend for float32, else
    ``backend@precision`` (the key of ``doc["backends"]`` and of the tables' rows)."""
    if not precision or precision == BASELINE:
        return backend
    return f"{backend}{ROW_SEP}{precision}"


def split_row(name: str) -> tuple[str, str]:
    """``("onnxruntime", "int8")`` for ``"onnxruntime@int8"``; ``(name, "float32")`` else."""
    backend, sep, precision = name.rpartition(ROW_SEP)
    if sep and precision in PRECISIONS:
        return backend, precision
    return name, BASELINE


def cell_precision(cell: dict[str, Any]) -> str:
    """The precision of a cell record (float32 for records written before it was a dimension)."""
    return cell.get("precision") or BASELINE


def fairness_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    """What must be equal for two cells to be compared as equals: scenario, batch size, device
    kind and precision (threads, timing mode and the model are the run's, the same for all)."""
    device = str(cell.get("device", "cpu")).split(":")[0]
    return (cell.get("scenario"), cell.get("batch_size"), device, cell_precision(cell))


def comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two cells may be ranked against each other (same :func:`fairness_key`)."""
    return fairness_key(a) == fairness_key(b)


def tolerance(precision: str, float32_tolerance: float) -> float | None:
    """The parity tolerance (relative to the output scale) of ``precision``; None: argmax only."""
    if precision == BASELINE:
        return float32_tolerance
    return TOLERANCES[check_precision(precision)].rel


def parity_verdict(parity: dict[str, Any], precision: str) -> dict[str, Any]:
    """A parity record (:func:`dlbench.analysis.parity.compare` with a loose tolerance) judged
    by ``precision``'s rule: ``ok`` iff the error relative to the output scale is within
    :func:`tolerance` (when it has one) and the argmax agreement reaches the bound. Adds
    ``precision``, ``rel_to_scale``, ``tolerance`` and ``min_argmax_agreement``; a reason when it
    fails. float32 records are returned as they are (the run's own tolerance applies)."""
    out = dict(parity)
    if precision == BASELINE:
        return out
    rule = TOLERANCES[check_precision(precision)]
    diff, scale = out.get("max_abs_diff"), out.get("output_scale")
    rel = diff / scale if diff is not None and scale else None
    agree = out.get("argmax_agreement_strict", out.get("argmax_agreement"))
    reasons = []
    if rule.rel is not None and rel is not None and not rel <= rule.rel:
        reasons.append(f"error {rel:.3g} of the output scale exceeds {rule.rel:g}")
    if agree is not None and not agree >= rule.min_argmax_agreement:
        reasons.append(f"argmax agreement {agree:.4f} below {rule.min_argmax_agreement:g}")
    if out.get("max_abs_diff") is None:  # shape mismatch or non-finite: already failed
        reasons.append(out.get("reason") or "not comparable")
    out.update(
        precision=precision,
        rel_to_scale=rel,
        tolerance=rule.rel if rule.rel is not None else 1.0,
        min_argmax_agreement=rule.min_argmax_agreement,
        rule=rule.why,
        ok=not reasons,
    )
    if reasons:
        out["reason"] = "; ".join(reasons) + "; "
    return out


def scale_error(reference: np.ndarray, out: np.ndarray) -> float | None:
    """Max abs difference divided by the reference's output scale (max abs value)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(out, dtype=np.float64)
    if ref.shape != got.shape or not np.all(np.isfinite(got)):
        return None
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if scale == 0.0:
        return None
    return float(np.max(np.abs(ref - got)) / scale)


def calibration_indices(n_available: int, samples: int, seed: int) -> np.ndarray:
    """The indices of the calibration samples: ``samples`` of ``n_available`` drawn without
    replacement by a generator seeded with ``seed`` (sorted): the same run, the same data."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ConfigError(
            f"Expected `calibration_samples` to be an int >= 1. Received: {samples!r}"
        )
    if n_available < 1:
        raise ConfigError(f"Expected a calibration split with samples. Received: {n_available}")
    rng = np.random.default_rng(seed)
    k = min(samples, n_available)
    return np.sort(rng.choice(n_available, size=k, replace=False))


def calibration_batch(dataset: Any, samples: int, seed: int) -> np.ndarray:
    """The calibration inputs (NCHW float32) from ``dataset`` (the train split of the run's
    dataset): :func:`calibration_indices` of it."""
    idx = calibration_indices(len(dataset), samples, seed)
    # a fresh C-order copy, canonical strides on every axis (a size-1 axis included)
    return np.array(dataset.get_batch(idx).inputs, dtype=np.float32, order="C", copy=True)


def skipped_cell_record(cell: dict[str, Any], reason: str) -> dict[str, Any]:
    """The record of a cell not run because its backend cannot do its precision on its device."""
    return {
        **cell,
        "status": "skipped",
        "error": None,
        "skip_reason": reason,
        "settings": {},
        "timing": None,
        "metrics": {},
        "validity": {"valid": False, "reasons": [f"skipped: {reason}"]},
        "memory": {},
    }


def precisions_of(cells: Iterable[dict[str, Any]]) -> list[str]:
    """The precisions present among ``cells``, in :data:`PRECISIONS` order."""
    seen = {cell_precision(c) for c in cells}
    return [p for p in PRECISIONS if p in seen]


#: ``dlbench run --profile NAME``: settings in the spirit of MLPerf Tiny (one thread, one sample
#: at a time, every precision an edge runtime offers; size, peak memory and the accuracy delta
#: to float32 are in every result).
PROFILES: dict[str, dict[str, Any]] = {
    "edge": {
        "intra_op_threads": 1,
        "inter_op_threads": 1,
        "scenarios": ["latency", "accuracy"],
        "batch_sizes": [1],
        "precision": ["float32", "float16", "int8"],
    },
}


def apply_profile(name: str, data: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """``data`` (config fields) with profile ``name``'s settings, except those in ``given``
    (flags the user gave win)."""
    if name not in PROFILES:
        raise ConfigError(f"Expected a profile in {sorted(PROFILES)}. Received: {name!r}")
    out = dict(data)
    for key, value in PROFILES[name].items():
        if key not in given:
            out[key] = list(value) if isinstance(value, list) else value
    return out
