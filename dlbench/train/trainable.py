"""Which specs can be trained, the logits spec a framework trains, and the export back.

Training refuses ops whose training-mode behaviour differs from inference and cannot be made
identical across frameworks here: ``batch_norm`` (batch statistics and running-statistic
updates) and ``dropout`` (random masks cannot be the same in every framework's RNG). It also
refuses ops whose weights some backends store fused or transformed (``lstm``,
``multi_head_attention``) and ``add`` / ``mul`` with a constant parameter. Trained parameters
are those of ``conv2d``, ``dense`` and ``layer_norm``.

A spec that ends with ``softmax`` is trained on the logits before it: the final softmax node is
dropped for training (the loss applies log-softmax itself) and kept in the exported spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.model.spec import ModelSpec

#: ops whose parameters are trained
TRAINED_OPS = ("conv2d", "dense", "layer_norm")
#: ops refused for training, with the reason
REFUSED = {
    "batch_norm": "train-mode batch statistics are not implemented identically in every "
    "framework; dlbench refuses batch_norm for training",
    "dropout": "random dropout masks cannot be identical across frameworks; dlbench refuses "
    "dropout for training",
    "lstm": "its weights are stored fused in some backends; not supported for training",
    "multi_head_attention": "its weights are stored fused in some backends; not supported for "
    "training",
}


def check_trainable(spec: ModelSpec) -> None:
    """Raise :class:`ConfigError` naming the first node whose op cannot be trained."""
    for rn in spec.resolved():
        reason = REFUSED.get(rn.op)
        if reason is None and rn.op in ("add", "mul") and rn.params:
            reason = "a constant parameter operand is not trained; not supported for training"
        if reason:
            raise ConfigError(
                f"Model {spec.name!r} cannot be trained: node {rn.name!r} uses op {rn.op!r} "
                f"({reason}). Expected a model without {sorted(REFUSED)}."
            )
    if len(spec.outputs) != 1:
        raise ConfigError(
            f"Expected a model with one output to train. Received outputs={spec.outputs}"
        )


def logits_spec(spec: ModelSpec) -> ModelSpec:
    """The spec to train: ``spec`` without a final softmax node (trained on its logits)."""
    check_trainable(spec)
    out = spec.outputs[0]
    last = next((n for n in spec.nodes if n.name == out), None)
    if last is None or last.op != "softmax":
        return spec
    s = spec.copy()
    s.nodes = [n for n in s.nodes if n.name != out]
    s.outputs = [last.inputs[0]]
    s.metadata = {**s.metadata, "output": "logits"}
    s._invalidate()
    return s.validate()


def trained_param_names(spec: ModelSpec) -> list[str]:
    """Names (in ``spec.params``) of every trained parameter, in graph order."""
    out: list[str] = []
    for rn in spec.resolved():
        if rn.op in TRAINED_OPS:
            out.extend(p for p in rn.param_names.values() if p not in out)
    return out


def export_spec(
    spec: ModelSpec, params: dict[str, np.ndarray], metadata: dict[str, Any] | None = None
) -> ModelSpec:
    """A copy of the original ``spec`` (final softmax kept) with trained ``params`` in place.

    ``params`` maps spec parameter names to arrays in canonical layout (NCHW / OIHW /
    ``(out, in)``); every array must keep its shape.
    """
    new = spec.copy()
    for name, arr in params.items():
        if name not in new.params:
            raise ConfigError(f"Exported parameter {name!r} is not in the spec {spec.name!r}")
        a = np.asarray(arr, dtype=np.float32)
        if a.shape != new.params[name].shape:
            raise ConfigError(
                f"Exported parameter {name!r}: expected shape {new.params[name].shape}. "
                f"Received: {a.shape}"
            )
        new.params[name] = np.ascontiguousarray(a)
    if metadata:
        new.metadata = {**new.metadata, **metadata}
    new._invalidate()
    return new.validate()
