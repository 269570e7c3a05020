"""LiteRT at reduced precision: the precision is a conversion setting of the TFLite converter
(see :mod:`dlbench.backends.litert.backend`): float16 weights, or int8 (full-integer with a
representative dataset, or dynamic-range). bfloat16 is not a converter target: skipped."""

from __future__ import annotations

import numpy as np

from dlbench.backends.litert.backend import CONVERTER_PRECISIONS, LiteRTBackend, LiteRTModel
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.spec import ModelSpec


def build_precision(
    backend: LiteRTBackend,
    spec: ModelSpec,
    device: str,
    precision: str,
    calibration: np.ndarray | None = None,
) -> LiteRTModel:
    """``spec`` converted at ``precision`` (the backend's ``precision`` option must match it:
    the worker builds the backend with the cell's precision)."""
    if precision not in CONVERTER_PRECISIONS:
        raise UnsupportedPrecision(
            backend.name, precision, device, "the TFLite converter has no bfloat16 target"
        )
    if backend.options["precision"] != precision:
        raise ValueError(
            f"Expected the backend's precision option to be {precision!r}. "
            f"Received: {backend.options['precision']!r}"
        )
    return backend.build(spec, device, calibration=calibration)
