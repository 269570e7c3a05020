"""The model zoo: ModelSpecs with seeded, framework-independent initialisation.

Built-in models are registered lazily in :data:`dlbench.registry.models` as ``"module:function"``
strings; third-party packages add theirs through the ``dlbench.models`` entry-point group (the
function must accept ``num_classes``, ``input_shape``, ``seed`` and return a ModelSpec).

Example:
    >>> from dlbench import zoo
    >>> spec = zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    >>> spec.stats()["params"]
    17226
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from dlbench.errors import ConfigError, SpecError
from dlbench.registry import models as _registry

#: name -> (builder, default per-sample input shape)
BUILTIN: dict[str, tuple[str, tuple[int, ...]]] = {
    "mlp": ("dlbench.model.zoo.classic:mlp", (1, 8, 8)),
    "lenet5": ("dlbench.model.zoo.classic:lenet5", (3, 32, 32)),
    "resnet20": ("dlbench.model.zoo.resnet:resnet20", (3, 32, 32)),
    "resnet56": ("dlbench.model.zoo.resnet:resnet56", (3, 32, 32)),
    "resnet18": ("dlbench.model.zoo.resnet:resnet18", (3, 32, 32)),
    "vgg11_bn": ("dlbench.model.zoo.classic:vgg11_bn", (3, 32, 32)),
    "mobilenet_v2": ("dlbench.model.zoo.mobilenet:mobilenet_v2", (3, 32, 32)),
    "vit_tiny": ("dlbench.model.zoo.vit:vit_tiny", (3, 32, 32)),
    "lstm": ("dlbench.model.zoo.recurrent:lstm", (3, 32, 32)),
    "digits_cnn": ("dlbench.model.zoo.digits:digits_cnn", (1, 8, 8)),
    # detectors (task "detection" in their metadata; raw head outputs, see zoo.detection)
    "fcos_mobilenet_v2": ("dlbench.model.zoo.detection:fcos_mobilenet_v2", (3, 320, 320)),
    "retinanet_mobilenet_v2": (
        "dlbench.model.zoo.detection:retinanet_mobilenet_v2",
        (3, 320, 320),
    ),
    # ImageNet-size, torchvision's architectures (zoo.imagenet); 1000 classes by default
    "resnet50": ("dlbench.model.zoo.imagenet:resnet50", (3, 224, 224)),
    "mobilenet_v2_224": ("dlbench.model.zoo.imagenet:mobilenet_v2_224", (3, 224, 224)),
    "efficientnet_b0": ("dlbench.model.zoo.imagenet:efficientnet_b0", (3, 224, 224)),
    "vit_b_16": ("dlbench.model.zoo.imagenet:vit_b_16", (3, 224, 224)),
    "convnext_tiny": ("dlbench.model.zoo.imagenet:convnext_tiny", (3, 224, 224)),
}

#: default number of classes of a built-in model when ``get`` is given none (else 10)
DEFAULT_CLASSES: dict[str, int] = {
    n: 1000
    for n in ("resnet50", "mobilenet_v2_224", "efficientnet_b0", "vit_b_16", "convnext_tiny")
}
DEFAULT_CLASSES["fcos_mobilenet_v2"] = 4  # its shipped weights: the 4 shapes categories

for _name, (_target, _) in BUILTIN.items():
    if _name not in _registry:
        _registry.register(_name, _target)


def names() -> list[str]:
    """Names of every model: the built-ins, then third-party ones (sorted)."""
    extra = [n for n in _registry.names() if n not in BUILTIN]
    return [*BUILTIN, *sorted(extra)]


def get(
    name: str,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    **kw: Any,
):
    """Build the model ``name`` as a validated :class:`~dlbench.model.spec.ModelSpec`.

    Args:
        name: One of :func:`names`.
        num_classes: Size of the output layer (default 10; 1000 for the ImageNet-size models,
            see :data:`DEFAULT_CLASSES`).
        input_shape: Per-sample input shape (default: the model's own, see :func:`describe`).
        seed: Seed of the NumPy initialisation (same seed, same weights, everywhere).
        **kw: Model-specific options (e.g. ``softmax=True`` to output probabilities).

    An ``.onnx`` file path instead of a name is imported (:func:`load`); its input shape and
    classes are its own (``input_shape`` only fills symbolic axes; ``num_classes``, when given,
    must match).

    Example:
        >>> get("resnet20").input_shape
        (3, 32, 32)
    """
    if str(name).lower().endswith(".onnx"):
        if kw:
            raise ConfigError(
                f"Expected no model options for an ONNX file. Received: {sorted(kw)} for {name}"
            )
        spec = load(name, input_shape=input_shape)
        if num_classes is not None and spec.num_classes != num_classes:
            raise ConfigError(
                f"Expected {name} to output {num_classes} classes. Received: a model with "
                f"output shape {spec.output_shape}"
            )
        return spec
    if num_classes is None:
        num_classes = DEFAULT_CLASSES.get(name, 10)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(
            f"Expected `num_classes` to be a positive int. Received: num_classes={num_classes!r}"
        )
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ConfigError(
                f"Expected `input_shape` to be a tuple of positive ints. Received: {input_shape!r}"
            )
    builder = _registry.get(name)
    try:
        spec = builder(num_classes=num_classes, input_shape=input_shape, seed=seed, **kw)
    except TypeError as exc:
        raise ConfigError(f"Model {name!r} rejected its options {sorted(kw)}: {exc}") from None
    except SpecError as exc:
        raise ConfigError(
            f"Model {name!r} cannot be built with input_shape={input_shape}: {exc}"
        ) from None
    return spec.validate()


def load(path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None):
    """A model from a file: an ONNX file imported (:func:`dlbench.spec.from_onnx`; needs the
    ``onnx`` package) or a saved ModelSpec (``.json`` with its ``.npz`` weights).

    Args:
        path: The file.
        input_shape: Per-sample input shape for an ONNX model whose non-batch axes are
            symbolic (it must agree with the fixed ones).

    Example:
        >>> spec = load("resnet50.onnx", input_shape=(3, 224, 224))  # doctest: +SKIP
    """
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Expected a model file (.onnx or .json). Received: {p} (not found)")
    if p.suffix.lower() == ".onnx":
        from dlbench.model.onnx_import import from_onnx

        shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        return from_onnx(p, input_shape=shape)
    if p.suffix.lower() == ".json":
        from dlbench.model.spec import ModelSpec

        return ModelSpec.load(p)
    raise ConfigError(
        f"Expected a model file ending in .onnx or .json (a saved ModelSpec). Received: {p}"
    )


def _lazy_options(name: str) -> dict[str, Any]:
    """``weights="zeros"`` for a builder that accepts it: counting needs shapes, not values."""
    import inspect

    try:
        accepts = "weights" in inspect.signature(_registry.get(name)).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"weights": "zeros"} if accepts else {}


@cache
def _count(name: str) -> int:
    return get(name, **_lazy_options(name)).stats()["params"]


def describe() -> list[dict[str, Any]]:
    """One row per model: name, default input shape, parameter count, description."""
    rows = []
    for n in names():
        default = BUILTIN.get(n, (None, None))[1]
        try:
            spec = get(n, **_lazy_options(n))
            rows.append(
                {
                    "name": n,
                    "input_shape": list(spec.input_shape),
                    "params": _count(n),
                    "description": spec.metadata.get("description", ""),
                }
            )
        except Exception as exc:  # a broken third-party model must not break the listing
            rows.append(
                {"name": n, "input_shape": default, "params": None, "description": str(exc)}
            )
    return rows
