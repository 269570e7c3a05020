"""Parity: do two backends compute the same function? Checked before anyone compares speed.

Every backend's output on a fixed batch is compared with the float64 NumPy reference
(:mod:`dlbench.backends.numpy`): maximum absolute difference, maximum relative difference, and
argmax agreement. A backend is *ok* when ``max_abs_diff <= tolerance * output_scale`` (with
``output_scale = max(1, max|reference|)``) and the argmax agrees on every sample.

Argmax agreement counts a sample as agreeing when both argmaxes are the same class, or when the
reference itself cannot tell them apart (their reference values differ by at most
``tolerance * output_scale``, the very bound the max abs diff is held to): a float32 backend may
legitimately break a near-tie the other way. How many samples agreed only through that rule is
recorded (``argmax_near_ties``), and exact agreement is reported on its own
(``argmax_agreement_strict``), so a near-tie is never silently counted as a match.

Example:
    >>> import numpy as np
    >>> ref = np.array([[0.1, 0.9], [0.8, 0.2]])
    >>> compare(ref, ref.astype(np.float32))["ok"]
    True
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dlbench.errors import BackendError

DEFAULT_TOLERANCE = 1e-4
REFERENCE = "numpy"


def compare(
    reference: np.ndarray, output: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE
) -> dict[str, Any]:
    """Compare a backend's ``output`` with the ``reference`` output; JSON-safe result.

    Returns:
        ``{"max_abs_diff", "max_rel_diff", "output_scale", "argmax_agreement",
        "argmax_agreement_strict", "argmax_near_ties", "tolerance", "ok"}``. ``max_rel_diff`` is
        ``max(|out - ref| / max(|ref|, output_scale * 1e-6))``. Argmaxes are taken over the last
        axis (agreement 1.0 for scalar outputs): ``argmax_agreement`` is the fraction of samples
        whose argmax is the same or a near-tie of the reference (reference values within
        ``tolerance * output_scale``), ``argmax_agreement_strict`` the fraction with the same
        argmax, ``argmax_near_ties`` the number of samples that agree only as near-ties.
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        return {
            "max_abs_diff": None,
            "max_rel_diff": None,
            "output_scale": None,
            "argmax_agreement": 0.0,
            "argmax_agreement_strict": 0.0,
            "argmax_near_ties": 0,
            "tolerance": float(tolerance),
            "ok": False,
            "error": f"shape mismatch: reference {ref.shape}, output {out.shape}",
        }
    finite = bool(np.isfinite(out).all())
    scale = float(max(1.0, np.abs(ref).max(initial=0.0)))
    if ref.size == 0:
        abs_diff = rel_diff = 0.0
    elif not finite:
        abs_diff = rel_diff = math.inf
    else:
        diff = np.abs(out - ref)
        abs_diff = float(diff.max())
        rel_diff = float((diff / np.maximum(np.abs(ref), scale * 1e-6)).max())
    bound = tolerance * scale  # one bound for the values and for near-ties
    if ref.ndim >= 1 and ref.shape[-1] > 1 and ref.size:
        r2 = ref.reshape(-1, ref.shape[-1])
        o2 = out.reshape(-1, out.shape[-1])
        ra = r2.argmax(axis=1)
        oa = np.nan_to_num(o2, nan=-np.inf).argmax(axis=1)
        rows = np.arange(len(r2))
        same = ra == oa
        near_tie = ~same & (np.abs(r2[rows, ra] - r2[rows, oa]) <= bound)
        agreement = float(np.mean(same | near_tie))
        strict = float(np.mean(same))
        near_ties = int(near_tie.sum())
    else:
        agreement = strict = 1.0
        near_ties = 0
    ok = finite and abs_diff <= bound and agreement == 1.0
    return {
        "max_abs_diff": abs_diff if math.isfinite(abs_diff) else None,
        "max_rel_diff": rel_diff if math.isfinite(rel_diff) else None,
        "output_scale": scale,
        "argmax_agreement": agreement,
        "argmax_agreement_strict": strict,
        "argmax_near_ties": near_ties,
        "tolerance": float(tolerance),
        "ok": bool(ok),
        **({} if finite else {"error": "output has NaN or infinite values"}),
    }


def make_batch(input_shape: tuple[int, ...], batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """The fixed parity batch: standard normal float32, from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *input_shape)).astype(np.float32)


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
    x = (
        make_batch(spec.input_shape, batch_size, seed)
        if batch is None
        else np.asarray(batch, np.float32)
    )
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
            rec["settings"] = _jsonable(model.settings())
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
                    "tolerance": float(tolerance),
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
        records.append(rec)
    return records


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def format_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows (backend, mode, max abs diff, max rel diff, argmax, status); the argmax cell
    says how many samples agreed only as near-ties of the reference."""
    rows = []
    for r in records:

        def num(v: Any) -> str:
            return "-" if v is None else f"{v:.2e}"

        agree = r.get("argmax_agreement")
        ties = r.get("argmax_near_ties") or 0
        agree_text = "-" if agree is None else f"{agree:.1%}"
        if ties:
            agree_text += f" ({ties} near-tie{'s' if ties > 1 else ''})"
        status = "ok" if r.get("ok") else ("ERROR" if r.get("error") else "MISMATCH")
        rows.append(
            [
                r["backend"],
                str(r.get("mode") or "-"),
                num(r.get("max_abs_diff")),
                num(r.get("max_rel_diff")),
                agree_text,
                status,
            ]
        )
    return rows


def cli_main(
    model: str,
    backends: list[str] | None,
    batch_size: int,
    device: str,
    console: Any,
) -> int:
    """``dlbench parity``: print a table of every backend against the reference.

    Returns 0 when every backend is within tolerance, 1 otherwise (mismatches and errors are
    printed loudly, with the error message).
    """
    from rich.table import Table

    from dlbench import zoo
    from dlbench.model.backend import available_backends

    if backends is None:
        backends = [b for b in available_backends() if b != REFERENCE]
    if batch_size < 1:
        raise BackendError(f"Expected `batch_size` to be a positive int. Received: {batch_size}")
    spec = zoo.get(model)
    console.print(
        f"Parity of [bold]{spec.name}[/] (fingerprint {spec.fingerprint()[:12]}) on a batch of "
        f"{batch_size} against the float64 {REFERENCE} reference, device {device}"
    )
    records = check(spec, backends, batch_size=batch_size, device=device)
    tol = records[0]["tolerance"] if records else DEFAULT_TOLERANCE
    table = Table(title=f"parity: {spec.name} (ok when max abs diff <= {tol:g} x output scale)")
    for col in ("backend", "mode", "max abs diff", "max rel diff", "argmax agree", "status"):
        table.add_column(col, justify="right" if "diff" in col or "agree" in col else "left")
    for r, row in zip(records, format_rows(records)):
        style = None if r.get("ok") else "bold red"
        table.add_row(*row, style=style)
    console.print(table)
    bad = [r for r in records if not r.get("ok")]
    for r in bad:
        why = r.get("error") or (
            f"max abs diff {r['max_abs_diff']} > {r['tolerance']} x scale {r['output_scale']}"
            f", argmax agreement {r['argmax_agreement']} (strict "
            f"{r.get('argmax_agreement_strict')})"
        )
        console.print(f"[bold red]PARITY FAILED[/] {r['backend']} ({r.get('mode')}): {why}")
    return 0 if records and not bad else 1
