"""Public import path of :class:`ModelSpec` (it lives in :mod:`dlbench.model.spec`), of
:func:`from_onnx` (in :mod:`dlbench.model.onnx_import`; it imports ``onnx`` only when called) and
of the converters from live framework objects: :func:`from_native` (any object a backend
wraps) and, named after their framework, :func:`from_torch`, :func:`from_keras`,
:func:`from_jax`.

A converter exports the object to ONNX in a temporary folder with the framework's own exporter
(:func:`dlbench.export.to_onnx`: ``torch.onnx`` dynamo, tf2onnx, jax2onnx; the file is checked
against the framework in ONNX Runtime there), imports the file with :func:`from_onnx`, and then
checks the spec's float64 NumPy reference against the framework itself on the example batch
(max abs diff <= ``tolerance`` x the framework output's scale, every argmax equal): a spec that
does not compute what the object computes is an error, never a silent result. The framework is
imported inside the function only.

Example:
    >>> import torch, dlbench
    >>> from dlbench.spec import from_torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # doctest: +SKIP
    >>> spec = from_torch(net, torch.randn(2, 1, 8, 8))  # doctest: +SKIP
    >>> spec.metadata["converted_from"]["framework"]  # doctest: +SKIP
    'torch'
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import ConfigError, SpecError
from dlbench.model.onnx_import import from_onnx
from dlbench.model.spec import FORMAT, FORMAT_VERSION, ModelSpec, Node, TensorInfo

__all__ = [
    "ModelSpec",
    "Node",
    "TensorInfo",
    "FORMAT",
    "FORMAT_VERSION",
    "from_onnx",
    "from_native",
    "from_torch",
    "from_keras",
    "from_jax",
]


def _as_batch(example: Any, what: str) -> np.ndarray:
    """An example batch (a framework tensor or an array) as float32 NumPy, checked."""
    if hasattr(example, "detach"):  # a torch tensor
        example = example.detach().cpu().numpy()
    try:
        x = np.asarray(example, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"Expected `{what}` to be a float array or tensor (a batch). Received: "
            f"{type(example).__name__} ({exc})"
        ) from None
    if x.ndim < 2 or 0 in x.shape:
        raise ConfigError(
            f"Expected `{what}` to be a non-empty batch (batch axis first, rank >= 2). "
            f"Received shape {x.shape}"
        )
    return x


def from_native(
    native: Any,
    example: Any = None,
    *,
    source: str | None = None,
    name: str | None = None,
    opset: int | None = None,
    exporter: str | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
    **wrap_options: Any,
) -> ModelSpec:
    """A live framework object as a ModelSpec: wrapped by its backend
    (``get_backend(source).wrap(native, **wrap_options)``), exported to ONNX in a temporary
    folder (:func:`dlbench.export.to_onnx`), imported (:func:`from_onnx`), then checked: the
    spec's float64 reference against the object on ``example``.

    Args:
        native: The object (a module, a model, a function with ``params=``...).
        example: An example batch in dlbench's NCHW layout (the spec's input); its per-sample
            shape is the spec's input shape. Default: two samples of standard normal noise of
            the shape the wrapped object declares (drawn with ``seed``).
        source: The backend to export from (default: the one whose manifest claims the
            object's module).
        name: Spec name (default: the wrapped object's name).
        opset: ONNX opset (default dlbench's export default, 18).
        exporter: The source's exporter (default its first).
        tolerance: Bound of the final check: max abs diff <= tolerance x the object's output
            scale, and every argmax equal.
        seed: Seed of the default example.
        **wrap_options: For the backend's ``wrap`` (``params``, ``layout``...).

    Raises:
        MissingFrameworkError: the framework, onnx or the exporter is not installed.
        ConfigError: a bad example, or an object no backend claims.
        ExportError / SpecError: the export failed, an op does not map, or the spec does not
            compute what the object computes.
    """
    from dlbench.analysis.parity import compare, failed
    from dlbench.export import to_onnx
    from dlbench.export.core import _infer_source
    from dlbench.model.backend import get_backend

    src = source or _infer_source(native)
    x = None if example is None else _as_batch(example, "example")
    shape = None if x is None else tuple(x.shape[1:])
    model = get_backend(src).wrap(native, input_shape=shape, name=name, **wrap_options)
    own = getattr(model, "input_shape", None)
    if x is None:
        if own is None:
            raise ConfigError(
                f"Expected an `example` batch for a {src} object that declares no input shape. "
                "Received: example=None"
            )
        x = np.random.default_rng(seed).standard_normal((2, *own)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="dlbench-convert-") as tmp:
        path = Path(tmp) / "model.onnx"
        report = to_onnx(model, path, source=src, opset=opset, exporter=exporter)
        spec = from_onnx(path, name=name or model.name)
    want = model.predict(x)
    got = get_backend("numpy").build(spec).predict(x)
    parity = compare(want, got, tolerance=tolerance)
    if failed(parity):
        raise SpecError(
            f"The spec imported from {src} ({report.exporter}, opset {report.opset}) does not "
            f"compute what the {src} model computes on the example batch: max abs diff "
            f"{parity.get('max_abs_diff')} (bound {tolerance:g} x output scale "
            f"{parity.get('output_scale')}), argmax agreement {parity.get('argmax_agreement')}"
            + (f"; {parity['error']}" if parity.get("error") else "")
        )
    spec.metadata["converted_from"] = {
        "framework": src,
        "exporter": report.exporter,
        "opset": report.opset,
        "versions": report.versions,
        "parity": parity,
    }
    return spec


# The converters named after their framework (the public API); each is from_native with the
# framework's conventions for the example batch.


def from_torch(
    module: Any,
    example: Any,
    *,
    name: str | None = None,
    opset: int | None = None,
    exporter: str | None = None,
    tolerance: float = 1e-4,
) -> ModelSpec:
    """A ``torch.nn.Module`` as a ModelSpec (export to ONNX with ``torch.onnx``, then import).

    Args:
        module: The module (put in eval mode for the export; its weights become the spec's).
        example: An example input batch, NCHW (a tensor or an array); its per-sample shape is
            the spec's input shape and the check runs on it.
        name: Spec name (default: the module's class name).
        opset: ONNX opset (default dlbench's export default, 18).
        exporter: ``dynamo`` (default) or ``torchscript``.
        tolerance: Bound of the final check (spec vs the module on ``example``).
    """
    return from_native(
        module,
        example,
        source="torch",
        name=name,
        opset=opset,
        exporter=exporter,
        tolerance=tolerance,
    )


def from_keras(
    model: Any,
    example: Any = None,
    *,
    name: str | None = None,
    opset: int | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ModelSpec:
    """A ``keras.Model`` (or ``tf.Module``/function) as a ModelSpec (tf2onnx, then import).

    The spec takes dlbench's NCHW layout, like every exported file: a Keras model declaring
    NHWC inputs ``(H, W, C)`` becomes a spec with input ``(C, H, W)``.

    Args:
        model: The Keras model (its declared input shape must be fixed apart from the batch).
        example: An NCHW example batch for the check (default: two samples of standard normal
            noise of the model's input shape, drawn with ``seed``).
        name: Spec name (default: the model's name).
        opset: ONNX opset (default 18).
        tolerance: Bound of the final check (spec vs the Keras model).
        seed: Seed of the default example.
    """
    if example is not None:  # NCHW, as documented (an NHWC batch would also wrap, as NCHW)
        from dlbench.model.backend import get_backend

        own = getattr(get_backend("tensorflow").wrap(model), "input_shape", None)
        shape = _as_batch(example, "example").shape
        if own is not None and tuple(shape[1:]) != tuple(own):
            raise ConfigError(
                f"Expected an NCHW example of per-sample shape {tuple(own)} (the model's input "
                f"in dlbench's layout). Received shape {shape}"
            )
    return from_native(
        model,
        example,
        source="tensorflow",
        name=name,
        opset=opset,
        tolerance=tolerance,
        seed=seed,
    )


def from_jax(
    fn: Any,
    params: Any,
    example: Any,
    *,
    layout: str = "NCHW",
    name: str | None = None,
    opset: int | None = None,
    tolerance: float = 1e-4,
) -> ModelSpec:
    """A JAX function ``fn(params, x)`` with its params (e.g. a Flax NNX module split into
    ``nnx.merge(graphdef, state)(x)`` and its state) as a ModelSpec (jax2onnx, then import).

    Args:
        fn: The function; ``params`` are closed over and become the spec's weights.
        params: Its parameter pytree.
        example: An example batch in the function's own layout.
        layout: ``"NCHW"`` or ``"NHWC"`` (the layout ``fn`` takes); the spec takes NCHW.
        name: Spec name (default: the function's name).
        opset: ONNX opset (default 18; jax2onnx needs 18 or later).
        tolerance: Bound of the final check (spec vs ``fn``).
    """
    if layout not in ("NCHW", "NHWC"):
        raise ConfigError(f"Expected layout 'NCHW' or 'NHWC'. Received: layout={layout!r}")
    x = _as_batch(example, "example")
    if layout == "NHWC":
        if x.ndim != 4:
            raise ConfigError(f"Expected an NHWC example of rank 4. Received shape {x.shape}")
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return from_native(
        fn,
        x,
        source="jax",
        name=name,
        opset=opset,
        tolerance=tolerance,
        params=params,
        layout=layout,
    )
