"""Checks shared by every backend's ``wrap``: input shape, layout, output type, a probe call.

A wrapped model knows the per-sample shape of dlbench's canonical (NCHW) input when the user
gives ``input_shape``. Then ``wrap`` runs one probe batch (a model that rejects that shape, or
returns something that is not a tensor, fails at once with a clear message) and every
``to_device`` checks the batch against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.backends.common.weights import nchw_to_nhwc
from dlbench.errors import BackendError, ConfigError

LAYOUTS = ("NCHW", "NHWC")
PROBE_BATCH = 2


def check_input_shape(input_shape: Any) -> tuple[int, ...] | None:
    """``input_shape`` as a tuple of positive ints (per sample, no batch axis), or None."""
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if not shape or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ConfigError(
            "Expected `input_shape` to be the per-sample shape as positive ints, e.g. (3, 32, 32) "
            f"(no batch axis). Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_wrap_kwargs(backend: str, kwargs: dict[str, Any], accepted: str) -> None:
    """Refuse arguments a backend's ``wrap`` does not take, naming those it does."""
    if kwargs:
        raise BackendError(
            f"Unknown argument(s) {sorted(kwargs)} for {backend} wrap. Expected some of: {accepted}"
        )


def describe(exc: BaseException) -> str:
    """``"ExceptionType: first line of its message"`` for an error message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def host_batch(model: Any, batch: Any) -> np.ndarray:
    """A batch checked against the wrapped input shape, as float32 in the model's ``layout``
    (NCHW data transposed for an NHWC model; C-contiguous)."""
    check_batch(model, batch)
    a = np.asarray(batch, dtype=np.float32)
    if getattr(model, "layout", "NCHW") == "NHWC":
        a = nchw_to_nhwc(a)
    return np.ascontiguousarray(a)


def check_layout(layout: Any) -> str:
    if layout not in LAYOUTS:
        raise ConfigError(
            f"Expected `layout` to be one of {list(LAYOUTS)}. Received: layout={layout!r}"
        )
    return str(layout)


def nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A canonical per-sample (C, H, W) shape in (H, W, C) order (other ranks unchanged)."""
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def check_batch(model: Any, batch: Any) -> None:
    """Raise a clear error when ``batch`` does not have the shape the model was wrapped for."""
    expected = getattr(model, "input_shape", None)
    shape = tuple(getattr(batch, "shape", ()))
    if expected is not None and shape[1:] != expected:
        raise BackendError(
            f"Model {model.name!r} ({model.backend.name}) was wrapped for inputs of per-sample "
            f"shape {expected}; the data has batches of shape {shape} (per sample {shape[1:]}). "
            "Check the dataset, or wrap with the input_shape of the data."
        )


def first_tensor(y: Any, is_tensor: Callable[[Any], bool], what: str, name: str) -> Any:
    """The model's output tensor: ``y`` itself, or the first item of a tuple/list of them."""
    if is_tensor(y):
        return y
    if isinstance(y, (tuple, list)) and y and is_tensor(y[0]):
        return y[0]
    kind = type(y).__name__
    if isinstance(y, dict):
        kind = f"dict with keys {sorted(map(str, y))[:5]}"
    elif isinstance(y, (tuple, list)):
        kind = f"{kind} of {[type(v).__name__ for v in y][:5]}"
    raise BackendError(
        f"Expected model {name!r} to return a {what} (or a tuple/list whose first item is one). "
        f"Received: {kind}. Wrap it so that it returns the output tensor."
    )


def probe(model: Any) -> tuple[int, ...]:
    """Run one batch of zeros of the wrapped input shape; return the output shape.

    Raises:
        BackendError: the model rejects the shape, or does not return a tensor.
    """
    shape = (PROBE_BATCH, *model.input_shape)
    batch = np.zeros(shape, np.float32)
    try:
        out = model.predict(batch)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(
            f"Model {model.name!r} ({model.backend.name}) fails on inputs of shape {shape} "
            f"(input_shape={model.input_shape}, layout {getattr(model, 'layout', 'NCHW')}): "
            f"{describe(exc)}. Check input_shape against what the model expects."
        ) from exc
    out = np.asarray(out)
    if out.ndim == 0 or out.shape[0] != PROBE_BATCH:
        raise BackendError(
            f"Expected model {model.name!r} to return one row per sample (batch {PROBE_BATCH}). "
            f"Received an output of shape {out.shape}."
        )
    return tuple(out.shape[1:])
