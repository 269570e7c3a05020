"""Requested settings verified after the framework starts (fairness contract, item 6).

A backend applies the settings it was asked for (threads, precision) and then reports what is
actually in force in :meth:`~dlbench.model.backend.Backend.settings`. :func:`not_in_force` compares
the two: a thread count whose ``*_in_force`` value differs from the request, a setting the
backend could not apply (``<key>_error``, e.g. TensorFlow's thread pools already initialised by a
Keras model built first), or ``precision="float32"`` with TF32 matmuls on. Each backend calls
:func:`verify` when it starts: a setting not in force is a :class:`SettingsNotInForceWarning`
(and the ``not_in_force`` entry of its settings, which the result records and the runner repeats
as a run warning), or a :class:`SettingsNotInForceError` under ``strict`` (``DLBENCH_STRICT=1``
in the environment, which worker processes inherit, or ``verify(..., strict=True)``).

Framework-free: nothing here imports a framework.

Example:
    >>> not_in_force({"intra_op_threads": 1, "intra_op_threads_in_force": 8})
    {'intra_op_threads': 'requested 1, in force 8'}
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from dlbench.errors import BackendError

STRICT_ENV = "DLBENCH_STRICT"
THREAD_KEYS = ("intra_op_threads", "inter_op_threads")


class SettingsNotInForceWarning(UserWarning):
    """A requested setting is not in force: the run goes on, but is flagged as unfair."""


class SettingsNotInForceError(BackendError):
    """A requested setting is not in force, under ``strict``."""


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def not_in_force(settings: dict[str, Any]) -> dict[str, str]:
    """``{setting: why}`` for every requested setting that ``settings`` shows is not in force."""
    out: dict[str, str] = {}
    for key in THREAD_KEYS:
        want = settings.get(key)
        if not want:
            continue
        err = settings.get(f"{key}_error")
        have_key = f"{key}_in_force"
        if have_key in settings and settings[have_key] != want:
            out[key] = f"requested {want}, in force {settings[have_key]}" + (
                f" ({err})" if err else ""
            )
        elif err:
            out[key] = f"requested {want}, could not be applied: {err}"
    if settings.get("precision") == "float32" and settings.get("tf32") is True:
        out["precision"] = "requested float32, but TF32 (reduced-precision) matmuls are enabled"
    for key, why in (settings.get("not_in_force_extra") or {}).items():
        out.setdefault(key, why)
    return out


def verify(backend: str, settings: dict[str, Any], strict: bool | None = None) -> dict[str, str]:
    """Check ``settings`` (a backend's :meth:`settings`); warn, or raise under ``strict``.

    Args:
        backend: The backend's name, for the message.
        settings: What the backend reports in force.
        strict: Raise instead of warning; ``None`` reads ``DLBENCH_STRICT`` from the environment.

    Returns:
        :func:`not_in_force` of ``settings`` (empty when everything requested is in force).

    Raises:
        SettingsNotInForceError: a setting is not in force and ``strict`` is on.
    """
    missing = not_in_force(settings)
    if not missing:
        return missing
    detail = "; ".join(f"{k}: {why}" for k, why in missing.items())
    message = (
        f"Backend {backend!r}: requested setting(s) not in force: {detail}. Timings of this "
        "backend are not comparable with backends that honour them."
    )
    if strict_from_env() if strict is None else strict:
        raise SettingsNotInForceError(message + " (strict: refusing to run)")
    warnings.warn(message, SettingsNotInForceWarning, stacklevel=3)
    return missing


def run_warnings(doc: dict[str, Any]) -> list[str]:
    """One run warning per backend and device of a result document with settings not in force."""
    out = []
    for backend, per_device in (doc.get("backends") or {}).items():
        for device, info in per_device.items():
            missing = (info.get("settings") or {}).get("not_in_force") or {}
            if missing:
                detail = "; ".join(f"{k}: {why}" for k, why in missing.items())
                out.append(
                    f"SETTINGS NOT IN FORCE for {backend} on {device}: {detail}. Its timings are "
                    "not comparable with backends that honour them."
                )
    return out
