"""Parity: do two backends compute the same function? Checked before anyone compares speed.

Every backend's output on a fixed batch is compared with the float64 NumPy reference
(:mod:`dlbench.backends.numpy`): maximum absolute difference, maximum relative difference, cosine
similarity, relative L2 error and argmax agreement. The bound is relative to the reference's own
scale: ``output_scale = max(max|reference|, SCALE_FLOOR)``, with the floor (the smallest normal
float32, ~1.2e-38) only there to keep an all-zero reference from dividing by zero: float32 keeps
its relative precision down to there, so an untrained network's 1e-11 logits are compared at
1e-4 of 1e-11. A backend is *ok* when
``max_abs_diff <= tolerance * output_scale``, the argmax agrees on every sample, and the reference
is *informative*.

Argmax agreement counts a sample as agreeing when both argmaxes are the same class, or when the
reference itself cannot tell them apart (their reference values differ by at most
``tolerance * output_scale``, the very bound the max abs diff is held to): a float32 backend may
legitimately break a near-tie the other way. How many samples agreed only through that rule is
recorded (``argmax_near_ties``), and exact agreement is reported on its own
(``argmax_agreement_strict``), so a near-tie is never silently counted as a match.

A reference that cannot tell right from wrong is *not informative*: its outputs are constant (a
constant output would pass: a uniform softmax head), the same for every input of the batch (an
output that ignores its input would pass), or below the smallest normal float32 (zeros). An
output that agrees with such a reference gets ``ok: False, informative: False`` and a
``reason``: not ok, but not a failure either. When every sample's top two reference classes are
a near-tie, the argmax check alone cannot tell anything: ``argmax_informative`` is False (the
values are still compared, so the record can be ok).
:func:`failed` is the one rule callers use: ``not ok`` and ``informative`` (a disagreement is
always informative).

Example:
    >>> import numpy as np
    >>> ref = np.array([[0.1, 0.9], [0.8, 0.2]])
    >>> compare(ref, ref.astype(np.float32))["ok"]
    True
    >>> r = compare(np.full((4, 10), 0.1), np.full((4, 10), 0.1))
    >>> r["ok"], r["informative"], failed(r)
    (False, False, False)
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dlbench.serialize import to_json_safe

DEFAULT_TOLERANCE = 1e-4
REFERENCE = "numpy"
#: The smallest output scale compared against (the smallest normal float32); a reference below it
#: in magnitude is not informative.
SCALE_FLOOR = float(np.finfo(np.float32).tiny)


def failed(record: dict[str, Any] | None) -> bool:
    """True when a parity record is a failure: not ok, and not merely *not informative*.

    Records written before ``informative`` existed count as informative. ``None`` (never
    checked) is not a failure.
    """
    if record is None:
        return False
    return not record.get("ok") and record.get("informative", True) is not False


def status(record: dict[str, Any] | None) -> str:
    """``"not checked"``, ``"ok"``, ``"not informative"``, ``"error"`` or ``"mismatch"``."""
    if record is None:
        return "not checked"
    if record.get("ok"):
        return "ok"
    if record.get("informative", True) is False:
        return "not informative"
    return "error" if record.get("error") else "mismatch"


def _uninformative_reason(ref: np.ndarray, bound: float) -> str | None:
    """Why ``ref`` cannot tell a right output from a wrong one, or None when it can."""
    if ref.size == 0:
        return "the reference output is empty"
    peak = float(np.abs(ref).max())
    if peak < SCALE_FLOOR:
        return (
            f"the reference outputs are all below the smallest normal float32 in magnitude "
            f"(max |ref| {peak:.3g}): too small to compare"
        )
    spread = float(np.ptp(ref))
    if spread <= 2 * bound:
        return (
            f"the reference output is constant (all values within {spread:.3g} of each other, "
            f"the bound is {bound:.3g}): a constant output would pass"
        )
    if ref.ndim >= 1 and ref.shape[0] >= 2:
        per_input = float(np.ptp(ref, axis=0).max())
        if per_input <= 2 * bound:
            return (
                f"the reference output is the same for every input of the batch (spread "
                f"{per_input:.3g}, the bound is {bound:.3g}): an output that ignores its input "
                "would pass"
            )
    return None


def compare(
    reference: np.ndarray, output: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE
) -> dict[str, Any]:
    """Compare a backend's ``output`` with the ``reference`` output; JSON-safe result.

    Returns:
        ``{"max_abs_diff", "max_rel_diff", "output_scale", "cosine_similarity",
        "rel_l2_error", "argmax_agreement", "argmax_agreement_strict", "argmax_near_ties",
        "argmax_informative", "tolerance", "informative", "ok"}``, plus ``reason`` when the reference is not
        informative and ``error`` when the output cannot be compared. ``output_scale`` is
        ``max(max|ref|, SCALE_FLOOR)``; ``max_rel_diff`` is
        ``max(|out - ref| / max(|ref|, output_scale * 1e-6))``; ``cosine_similarity`` is
        ``<out, ref> / (|out| |ref|)`` over the whole batch (None when either is all zeros);
        ``rel_l2_error`` is ``|out - ref| / |ref|`` (None for an all-zero reference). Argmaxes
        are taken over the last axis (agreement 1.0 for scalar outputs): ``argmax_agreement`` is
        the fraction of samples whose argmax is the same or a near-tie of the reference
        (reference values within ``tolerance * output_scale``), ``argmax_agreement_strict`` the
        fraction with the same argmax, ``argmax_near_ties`` the number of samples that agree only
        as near-ties, ``argmax_informative`` whether any sample's top two reference classes are
        more than the bound apart. ``ok`` is True only when the output is within the bound, every argmax
        agrees and the reference is informative; ``informative`` is False only when the output
        agreed with a reference that cannot tell right from wrong (see :func:`failed`).
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        return {
            "max_abs_diff": None,
            "max_rel_diff": None,
            "output_scale": None,
            "cosine_similarity": None,
            "rel_l2_error": None,
            "argmax_agreement": 0.0,
            "argmax_agreement_strict": 0.0,
            "argmax_near_ties": 0,
            "tolerance": float(tolerance),
            "informative": True,
            "ok": False,
            "error": f"shape mismatch: reference {ref.shape}, output {out.shape}",
        }
    finite = bool(np.isfinite(out).all())
    scale = float(max(SCALE_FLOOR, np.abs(ref).max(initial=0.0)))
    cosine = rel_l2 = None
    if ref.size == 0:
        abs_diff = rel_diff = 0.0
    elif not finite:
        abs_diff = rel_diff = math.inf
    else:
        diff = np.abs(out - ref)
        abs_diff = float(diff.max())
        rel_diff = float((diff / np.maximum(np.abs(ref), scale * 1e-6)).max())
        # norms on the scaled arrays: no overflow or underflow at any output scale
        r, o = ref.ravel() / scale, out.ravel() / scale
        nr, no = float(np.linalg.norm(r)), float(np.linalg.norm(o))
        if nr > 0 and no > 0:
            cosine = float(np.clip(np.dot(r, o) / (nr * no), -1.0, 1.0))
        if nr > 0:
            rel_l2 = float(np.linalg.norm(o - r) / nr)
    bound = tolerance * scale  # one bound for the values and for near-ties
    if ref.ndim >= 1 and ref.shape[-1] > 1 and ref.size:
        r2 = ref.reshape(-1, ref.shape[-1])
        o2 = out.reshape(-1, out.shape[-1])
        ra = r2.argmax(axis=1)
        oa = np.nan_to_num(o2, nan=-np.inf).argmax(axis=1)
        idx = np.arange(len(r2))
        same = ra == oa
        near_tie = ~same & (np.abs(r2[idx, ra] - r2[idx, oa]) <= bound)
        agreement = float(np.mean(same | near_tie))
        strict = float(np.mean(same))
        near_ties = int(near_tie.sum())
        # how many samples the reference itself cannot rank: top two within the bound
        top2 = np.sort(r2, axis=1)[:, -2:]
        argmax_informative = bool(np.any(top2[:, 1] - top2[:, 0] > bound))
    else:
        agreement = strict = 1.0
        near_ties = 0
        argmax_informative = False
    agreed = finite and abs_diff <= bound and agreement == 1.0
    reason = _uninformative_reason(ref, bound) if agreed else None
    return {
        "max_abs_diff": abs_diff if math.isfinite(abs_diff) else None,
        "max_rel_diff": rel_diff if math.isfinite(rel_diff) else None,
        "output_scale": scale,
        "cosine_similarity": cosine,
        "rel_l2_error": rel_l2,
        "argmax_agreement": agreement,
        "argmax_agreement_strict": strict,
        "argmax_near_ties": near_ties,
        "argmax_informative": argmax_informative,
        "tolerance": float(tolerance),
        "informative": reason is None,
        "ok": bool(agreed and reason is None),
        **({} if reason is None else {"reason": f"parity not informative: {reason}"}),
        **({} if finite else {"error": "output has NaN or infinite values"}),
    }


def make_batch(input_shape: tuple[int, ...], batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """The fixed parity batch: standard normal float32, from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *input_shape)).astype(np.float32)


def make_input(spec: Any, batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """The fixed parity batch for ``spec``'s input: :func:`make_batch` for a float input;
    for integer token ids, int64 ids drawn uniformly from the valid ``[0, vocab)``."""
    desc = spec.input_desc()
    if not desc.integer:
        return make_batch(spec.input_shape, batch_size, seed)
    rng = np.random.default_rng(seed)
    vocab = desc.vocab if desc.vocab is not None else 2
    return rng.integers(0, vocab, (batch_size, *spec.input_shape), dtype=np.int64)


def _order(backends: list[str]) -> list[str]:
    """torch before tensorflow in one process (the reverse can crash)."""
    rank = {"torch": 0, "tensorflow": 1}
    return sorted(backends, key=lambda b: rank.get(b.split(":")[0], 2))


def check(
    spec: Any,
    backends: list[str],
    *,
    batch: np.ndarray | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    backend_options: dict[str, dict] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[dict[str, Any]]:
    """Run ``spec`` on each backend in this process and compare with the NumPy reference.

    Args:
        spec: A :class:`~dlbench.model.spec.ModelSpec` (or a zoo name).
        backends: Backend names; options per backend come from ``backend_options[name]``.
            A name may carry a mode, ``"torch:compile"``, as shorthand for ``{"mode": ...}``.
        batch: Inputs (default: :func:`make_batch` of ``batch_size`` from ``seed``).
        device: Device the backends run on (the reference always runs on the CPU).

    Returns:
        One JSON-safe record per backend: ``backend``, ``mode``, ``device``, ``settings``,
        ``fingerprint``, the fields of :func:`compare`, and ``error`` when it failed to run.
    """
    from dlbench.model.backend import get_backend
    from dlbench.model.spec import ModelSpec

    if isinstance(spec, str):
        from dlbench import zoo

        spec = zoo.get(spec)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"Expected a ModelSpec or a zoo name. Received: {type(spec).__name__}")
    spec.validate()
    # an integer input (token ids) gets int64 ids, passed on untouched
    x = make_input(spec, batch_size, seed) if batch is None else spec.input_desc().host(batch)
    ref = get_backend(REFERENCE).build(spec).predict(x)
    fingerprint = spec.fingerprint()
    records = []
    for entry in _order(list(backends)):
        name, _, mode = entry.partition(":")
        opts = dict((backend_options or {}).get(entry, (backend_options or {}).get(name, {})))
        if mode:
            opts["mode"] = mode
        rec: dict[str, Any] = {
            "backend": name,
            "mode": opts.get("mode"),
            "device": device,
            "fingerprint": fingerprint,
            "batch_size": int(x.shape[0]),
        }
        try:
            backend = get_backend(name, **opts)
            model = backend.build(spec, device)
            t0 = time.perf_counter()
            out = model.predict(x)
            rec["seconds"] = time.perf_counter() - t0
            rec["settings"] = to_json_safe(model.settings(), stringify=True)
            rec["mode"] = rec["settings"].get("mode", rec["mode"])
            rec.update(compare(ref, out, tolerance=tolerance))
        except Exception as exc:  # report, never crash the whole check
            rec.update(
                {
                    "max_abs_diff": None,
                    "max_rel_diff": None,
                    "output_scale": None,
                    "argmax_agreement": None,
                    "argmax_agreement_strict": None,
                    "argmax_near_ties": None,
                    "cosine_similarity": None,
                    "rel_l2_error": None,
                    "tolerance": float(tolerance),
                    "informative": True,
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
        records.append(rec)
    return records
