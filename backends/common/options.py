"""Options every backend accepts, and their validation."""

from __future__ import annotations

import os
from typing import Any

from dlbench.errors import ConfigError

#: Options shared by every backend (each backend adds its own, e.g. ``mode``).
COMMON_OPTIONS: dict[str, Any] = {
    "intra_op_threads": None,
    "inter_op_threads": None,
    "precision": "float32",
    # int8 post-training quantization: static (calibrated) or dynamic (weights only)
    "quantization": "static",
    # a detector's post-processing: native (this framework) or numpy (the float64 reference);
    # read by the worker (dlbench.execution.scenarios.detection), not by the model
    "postprocess": "native",
}
PRECISIONS = ("float32", "bfloat16", "float16", "int8")
QUANTIZATIONS = ("static", "dynamic")
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_FLAGS",
)


def check_choice(backend: str, options: dict[str, Any], key: str, choices: tuple[Any, ...]) -> None:
    if options[key] not in choices:
        raise ConfigError(
            f"Backend {backend!r}: expected `{key}` to be one of {list(choices)}. "
            f"Received: {key}={options[key]!r}"
        )


def check_common(backend: str, options: dict[str, Any]) -> None:
    """Validate threads and precision; raise :class:`ConfigError` saying what was expected."""
    for key in ("intra_op_threads", "inter_op_threads"):
        v = options[key]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(
                f"Backend {backend!r}: expected `{key}` to be a positive int or None. "
                f"Received: {key}={v!r}"
            )
    check_choice(backend, options, "precision", PRECISIONS)
    check_choice(backend, options, "quantization", QUANTIZATIONS)


def thread_env() -> dict[str, str]:
    """The process-wide thread variables in force (set by the runner before import)."""
    return {k: os.environ[k] for k in THREAD_ENV if k in os.environ}
