"""Whether a model's weights were trained, and whether a zoo model is being re-shaped (issue 22).

An accuracy measured with seeded random weights says nothing about a framework: it is a
timing-only figure. :func:`weights_info` reads what a ModelSpec says about its weights (the zoo
marks shipped trained weights with ``metadata["pretrained"] = True`` and ``metadata["trained"]``
naming the dataset); :func:`reshape_plan` tells when a zoo model is rebuilt for a dataset whose
input shape or class count differs from the model's own, which gives a different, untrained
network: stated in the run's warnings, and refused for a model that has trained weights unless
asked (``reshape_model``).

Framework-free.

Example:
    >>> from dlbench import zoo
    >>> weights_info(zoo.get("digits_cnn"))["trained"], weights_info(zoo.get("mlp"))["trained"]
    (True, False)
"""

from __future__ import annotations

from typing import Any

from dlbench.errors import ConfigError

UNTRAINED = "untrained (random weights)"


def weights_info(spec: Any, *, from_zoo: bool = True) -> dict[str, Any]:
    """``{"trained", "dataset", "test_accuracy", "source"}`` of a spec's weights.

    ``trained`` is True (shipped or saved trained weights), False (seeded random weights: every
    zoo model unless it says otherwise) or None (a file that does not say, e.g. an ONNX import).
    """
    meta = getattr(spec, "metadata", None) or {}
    trained_meta = meta.get("trained") if isinstance(meta.get("trained"), dict) else {}
    pretrained = meta.get("pretrained")
    if pretrained is True or trained_meta:
        return {
            "trained": True,
            "dataset": trained_meta.get("dataset"),
            "test_accuracy": trained_meta.get("test_accuracy"),
            "source": "shipped" if from_zoo else "file",
        }
    if pretrained is False or from_zoo:
        return {"trained": False, "dataset": None, "test_accuracy": None, "source": "seeded"}
    return {"trained": None, "dataset": None, "test_accuracy": None, "source": "file"}


def describe_weights(info: dict[str, Any]) -> str:
    """``trained on digits (96.9% test)``, ``untrained (random weights)`` or ``unknown``."""
    if info.get("trained") is True:
        text = "trained" + (f" on {info['dataset']}" if info.get("dataset") else "")
        acc = info.get("test_accuracy")
        return text + (f" ({acc * 100:.1f}% test)" if isinstance(acc, (int, float)) else "")
    if info.get("trained") is False:
        return UNTRAINED
    return "unknown (not recorded in the model file)"


def reshape_plan(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    allow: bool = False,
    model_options: dict[str, Any] | None = None,
) -> str | None:
    """A warning when zoo model ``name`` is rebuilt for another input shape or class count;
    ``None`` when it is used as it is.

    Raises:
        ConfigError: the model has trained weights for its own shape and ``allow`` is False:
            re-shaping it would silently benchmark a different, untrained network.
    """
    from dlbench import zoo

    if name not in zoo.names():
        return None
    builtin = getattr(zoo, "BUILTIN", {}).get(name)
    if builtin is not None:  # the usual case, told without building the model
        classes = getattr(zoo, "DEFAULT_CLASSES", {}).get(name, 10)
        if tuple(builtin[1]) == tuple(input_shape) and classes == num_classes:
            return None
    own = zoo.get(name, **{k: v for k, v in (model_options or {}).items() if k == "softmax"})
    own_classes = int((own.metadata or {}).get("num_classes") or num_classes)
    same_shape = tuple(own.input_shape) == tuple(input_shape)
    if same_shape and own_classes == num_classes:
        return None
    info = weights_info(own)
    changes = []
    if not same_shape:
        changes.append(f"input {tuple(own.input_shape)} -> {tuple(input_shape)}")
    if own_classes != num_classes:
        changes.append(f"{own_classes} -> {num_classes} classes")
    what = ", ".join(changes)
    asked_untrained = (model_options or {}).get("pretrained") is False
    if info["trained"] and not (allow or asked_untrained):
        raise ConfigError(
            f"Expected a dataset that fits {name!r}'s trained weights "
            f"({describe_weights(info)}: input {tuple(own.input_shape)}, {own_classes} "
            f"classes). Received: a dataset with input {tuple(input_shape)} and {num_classes} "
            "classes; re-shaping the model would benchmark a different, untrained network. "
            "Pass --reshape-model (reshape_model = true) to benchmark that network anyway."
        )
    return (
        f"Model {name!r} re-shaped for the dataset ({what}): a different network from the "
        f"zoo's {name}, with {UNTRAINED}; its accuracy is a timing-only figure."
    )
