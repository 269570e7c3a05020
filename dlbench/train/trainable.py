"""Which specs can be trained, the logits spec a framework trains, and the export back.

Every op of the zoo trains, in train mode, identically in every framework:

* ``batch_norm`` normalises with the batch statistics (biased variance) and updates its running
  statistics as ``torch.nn.BatchNorm*d(momentum=0.1)`` does: ``running = (1 - m) * running + m *
  batch``, the running variance from the *unbiased* batch variance (``n / (n - 1)``); the running
  statistics are state carried from step to step, used by evaluation and exported with the
  weights (``mean`` / ``var``). Its ``weight`` and ``bias`` are trained.
* ``dropout`` multiplies by a mask (``keep / (1 - rate)``); by default every framework is given
  the same masks, drawn from one seeded NumPy stream (:mod:`dlbench.train.augment`), so runs stay
  step-for-step comparable; ``TrainConfig(dropout_rng="framework")`` uses each framework's own RNG.
* ``lstm`` and ``multi_head_attention`` are trained through their spec weights (PyTorch layout:
  ``bias_ih`` and ``bias_hh`` stay two parameters, as in ``torch.nn.LSTM``), ``layer_norm``
  through ``weight`` / ``bias``; a constant operand of ``add`` (a position embedding) is trained,
  one of ``mul`` / ``div`` (a fixed scale) is not.

A spec that ends with ``softmax`` is trained on the logits before it: the final softmax node is
dropped for training (the loss applies log-softmax itself) and kept in the exported spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.model.ops import OPS as OP_SET
from dlbench.model.spec import ModelSpec, ResolvedNode

#: op -> roles whose parameters are trained (every role of the op when None)
TRAINED_ROLES: dict[str, tuple[str, ...] | None] = {
    "conv2d": None,
    "dense": None,
    "layer_norm": None,
    "batch_norm": ("weight", "bias"),
    "lstm": None,
    "multi_head_attention": None,
    "add": ("other",),
}
#: ops with trained parameters
TRAINED_OPS = tuple(TRAINED_ROLES)
#: op -> roles that are train-mode state (updated by the forward pass, not by gradients)
STATE_ROLES: dict[str, tuple[str, ...]] = {"batch_norm": ("mean", "var")}
#: ops refused for training, with the reason (none today; kept for third-party op sets)
REFUSED: dict[str, str] = {}


def trained_roles(rn: ResolvedNode) -> list[str]:
    """The node's parameter roles that gradients update."""
    if rn.op not in TRAINED_ROLES:
        return []
    roles = TRAINED_ROLES[rn.op]
    return [r for r in rn.params if roles is None or r in roles]


def state_roles(rn: ResolvedNode) -> list[str]:
    """The node's parameter roles that are train-mode state (batch-norm running statistics)."""
    return [r for r in STATE_ROLES.get(rn.op, ()) if r in rn.params]


def check_trainable(spec: ModelSpec) -> None:
    """Raise :class:`ConfigError` naming the first node whose op cannot be trained."""
    for rn in spec.resolved():
        reason = REFUSED.get(rn.op)
        if reason is None and rn.op not in OP_SET:
            reason = "not an op of dlbench's op set"
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
        out.extend(rn.param_names[r] for r in trained_roles(rn) if rn.param_names[r] not in out)
    return out


def state_param_names(spec: ModelSpec) -> list[str]:
    """Names (in ``spec.params``) of every train-mode state array (running statistics)."""
    out: list[str] = []
    for rn in spec.resolved():
        out.extend(rn.param_names[r] for r in state_roles(rn) if rn.param_names[r] not in out)
    return out


def dropout_nodes(spec: ModelSpec) -> list[tuple[str, float, tuple[int, ...]]]:
    """``(node, rate, per-sample shape)`` of every dropout node with a rate above 0."""
    return [
        (rn.name, float(rn.attrs["rate"]), tuple(rn.out_shape))
        for rn in spec.resolved()
        if rn.op == "dropout" and rn.attrs["rate"] > 0
    ]


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
