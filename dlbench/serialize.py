"""One conversion of Python/NumPy values into JSON-safe ones, used by every writer in dlbench.

Result files, worker events, parity records, data-check reports and ModelSpec graphs all go
through :func:`to_json_safe`, so a value is written the same way wherever it appears.

Example:
    >>> import numpy as np
    >>> to_json_safe({"a": np.float32(1.5), 2: (np.int64(3), float("nan"))})
    {'a': 1.5, '2': [3, None]}
"""

from __future__ import annotations

import math
from os import PathLike
from typing import Any

import numpy as np


def to_json_safe(value: Any, *, strict: bool = False, stringify: bool = False) -> Any:
    """``value`` with every part made JSON-safe, recursively.

    Dict keys become strings; tuples become lists; NumPy arrays and scalars become Python lists
    and numbers; paths become strings; bytes become hex. Non-finite floats (NaN, inf) become
    ``None`` (JSON has no NaN) unless ``strict``.

    Args:
        value: Anything.
        strict: Refuse non-finite floats (``ValueError``) instead of writing ``None``, for
            documents whose every value must round-trip (a ModelSpec graph).
        stringify: Write objects of any other type as ``str(obj)`` (for free-form records such
            as a backend's settings) instead of raising ``TypeError``.

    Raises:
        TypeError: an object of another type, unless ``stringify``.
        ValueError: a non-finite float under ``strict``.
    """
    if isinstance(value, dict):
        return {
            str(k): to_json_safe(v, strict=strict, stringify=stringify) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v, strict=strict, stringify=stringify) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return to_json_safe(value.tolist(), strict=strict, stringify=stringify)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if strict:
            raise ValueError(f"Expected a finite number. Received: {value!r}")
        return None
    if isinstance(value, bytes) and not strict:
        return value.hex()
    if isinstance(value, PathLike) and not strict:
        return str(value)
    if stringify:
        return str(value)
    raise TypeError(
        f"Expected a JSON value (number, string, list, dict). Received: {value!r} "
        f"({type(value).__name__})"
    )
