"""Public import path of :class:`ModelSpec` (it lives in :mod:`dlbench.model.spec`), of
:func:`from_onnx` (in :mod:`dlbench.model.onnx_import`; it imports ``onnx`` only when called) and
of the converters from live framework objects: :func:`from_torch`, :func:`from_keras`,
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


def _convert(
    source: str,
    model: Any,
    x: np.ndarray,
    name: str | None,
    opset: int | None,
    exporter: str | None,
    tolerance: float,
) -> ModelSpec:
    """Export the wrapped ``model`` to ONNX, import it, and check the spec against ``model``
    on the NCHW batch ``x``."""
    from dlbench.analysis.parity import compare, failed
    from dlbench.export import to_onnx
    from dlbench.model.backend import get_backend

    with tempfile.TemporaryDirectory(prefix="dlbench-convert-") as tmp:
        path = Path(tmp) / "model.onnx"
        report = to_onnx(model, path, source=source, opset=opset, exporter=exporter)
        spec = from_onnx(path, name=name or model.name)
    want = model.predict(x)
    got = get_backend("numpy").build(spec).predict(x)
    parity = compare(want, got, tolerance=tolerance)
    if failed(parity):
        raise SpecError(
            f"The spec imported from {source} ({report.exporter}, opset {report.opset}) does not "
            f"compute what the {source} model computes on the example batch: max abs diff "
            f"{parity.get('max_abs_diff')} (bound {tolerance:g} x output scale "
            f"{parity.get('output_scale')}), argmax agreement {parity.get('argmax_agreement')}"
            + (f"; {parity['error']}" if parity.get("error") else "")
        )
    spec.metadata["converted_from"] = {
        "framework": source,
        "exporter": report.exporter,
        "opset": report.opset,
        "versions": report.versions,
        "parity": parity,
    }
    return spec


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

    Raises:
        MissingFrameworkError: torch, onnx or the exporter is not installed.
        ExportError / SpecError: the export failed, an op does not map, or the spec does not
            compute what the module computes.
    """
    from dlbench.model.backend import get_backend

    x = _as_batch(example, "example")
    model = get_backend("torch").wrap(module, input_shape=x.shape[1:], name=name)
    return _convert("torch", model, x, name, opset, exporter, tolerance)


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
    from dlbench.model.backend import get_backend

    wrapped = get_backend("tensorflow").wrap(model, name=name)
    shape = getattr(wrapped, "input_shape", None)
    if example is None:
        if shape is None:
            raise ConfigError(
                "Expected a Keras model with a fixed input shape, or an `example` batch. "
                "Received a model whose input shape is unknown"
            )
        x = np.random.default_rng(seed).standard_normal((2, *shape)).astype(np.float32)
    else:
        x = _as_batch(example, "example")
        if shape is not None and tuple(x.shape[1:]) != tuple(shape):
            raise ConfigError(
                f"Expected an NCHW example of per-sample shape {tuple(shape)} (the model's input "
                f"in dlbench's layout). Received shape {x.shape}"
            )
    return _convert("tensorflow", wrapped, x, name, opset, None, tolerance)


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
    """A JAX function ``fn(params, x)`` with its params (e.g. a Flax module's ``apply`` and its
    variables) as a ModelSpec (jax2onnx, then import).

    Args:
        fn: The function; ``params`` are closed over and become the spec's weights.
        params: Its parameter pytree.
        example: An example batch in the function's own layout.
        layout: ``"NCHW"`` or ``"NHWC"`` (the layout ``fn`` takes); the spec takes NCHW.
        name: Spec name (default: the function's name).
        opset: ONNX opset (default 18; jax2onnx needs 18 or later).
        tolerance: Bound of the final check (spec vs ``fn``).
    """
    from dlbench.model.backend import get_backend

    if layout not in ("NCHW", "NHWC"):
        raise ConfigError(f"Expected layout 'NCHW' or 'NHWC'. Received: layout={layout!r}")
    x = _as_batch(example, "example")
    if layout == "NHWC":
        if x.ndim != 4:
            raise ConfigError(f"Expected an NHWC example of rank 4. Received shape {x.shape}")
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    model = get_backend("jax").wrap(fn, params, input_shape=x.shape[1:], layout=layout, name=name)
    return _convert("jax", model, x, name, opset, None, tolerance)
