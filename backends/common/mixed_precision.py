"""Mixed-precision training, shared by every framework's trainer: the dynamic loss-scale rule,
what a run records about its precision, and the check that the precision asked for is in force.

The loss-scale rule is ``torch.amp.GradScaler``'s (``torch._amp_update_scale_``), written with
arithmetic operators and the framework's ``where`` only, so TensorFlow and JAX run the same
expressions inside their compiled step (PyTorch uses ``GradScaler`` itself)::

    finite:   good = good + 1; if good == growth_interval: scale *= growth_factor; good = 0
    not finite (a step skipped): scale *= backoff_factor; good = 0

What stays float32 in every framework: the master weights and the optimizer update, the loss
(softmax cross-entropy on float32 logits), batch-norm and layer-norm statistics (computed in
float32; the running statistics are float32 state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlbench.errors import BackendError
from dlbench.train.config import TrainConfig

#: what every framework keeps in float32 under a mixed precision (recorded with the run)
FLOAT32_KEPT = (
    "master weights",
    "optimizer update",
    "loss (softmax cross-entropy on float32 logits)",
    "batch-norm / layer-norm statistics (float32 reductions; running statistics float32)",
)


def compute_dtype(config: TrainConfig) -> str:
    """The dtype matrix products and convolutions run in: ``config.precision``."""
    return config.precision


def uses_loss_scaling(config: TrainConfig) -> bool:
    """Dynamic loss scaling is float16's only (bfloat16 has float32's exponent range)."""
    return config.precision == "float16"


def update_loss_scale(
    scale: Any,
    good_steps: Any,
    finite: Any,
    config: TrainConfig,
    where: Callable[[Any, Any, Any], Any],
) -> tuple[Any, Any]:
    """``(new_scale, new_good_steps)`` after a step whose gradients were ``finite`` (a boolean
    scalar), as ``torch.amp.GradScaler.update``; ``where(cond, a, b)`` is the framework's."""
    grown = good_steps + 1
    grow = grown >= config.loss_scale_growth_interval
    new_scale = where(
        finite,
        where(grow, scale * config.loss_scale_growth_factor, scale),
        scale * config.loss_scale_backoff_factor,
    )
    new_good = where(finite, where(grow, 0 * grown, grown), 0 * grown)
    return new_scale, new_good


def precision_record(
    config: TrainConfig,
    mechanism: str,
    observed: dict[str, int] | None,
    loss_scale: float | None = None,
    skipped_steps: int | None = None,
) -> dict[str, Any]:
    """What a framework ran: the record kept with each fold (``precision`` in the train result).

    Args:
        config: The run's configuration (``precision`` and the loss-scale settings).
        mechanism: The framework's idiom, in words (``torch.autocast(...)``, the policy, ...).
        observed: Dtype -> count of the matrix products and convolutions seen in the compiled
            training step (None: not observed).
        loss_scale: The loss scale after the last step (float16 only).
        skipped_steps: Steps skipped for non-finite gradients (float16 only).
    """
    scaling = None
    if uses_loss_scaling(config):
        scaling = {
            "kind": "dynamic",
            "initial": float(config.loss_scale),
            "growth_factor": float(config.loss_scale_growth_factor),
            "backoff_factor": float(config.loss_scale_backoff_factor),
            "growth_interval": int(config.loss_scale_growth_interval),
            "final": None if loss_scale is None else float(loss_scale),
            "skipped_steps": None if skipped_steps is None else int(skipped_steps),
        }
    return {
        "requested": config.precision,
        "compute_dtype": compute_dtype(config),
        "param_dtype": "float32",
        "mechanism": mechanism,
        "float32_kept": list(FLOAT32_KEPT) if config.precision != "float32" else [],
        "observed_compute_dtypes": observed,
        "loss_scale": scaling,
    }


def check_observed(
    framework: str, config: TrainConfig, observed: dict[str, int] | None
) -> str | None:
    """Refuse a run whose training step did not compute in the precision asked for.

    Raises :class:`~dlbench.errors.BackendError` when no matrix product or convolution ran in
    the compute dtype (a float32 run claiming bfloat16), or when a float32 run used a lower
    precision. Returns a warning when some of them ran in another dtype, else None.
    """
    if observed is None:
        return None
    want = compute_dtype(config)
    if not observed:  # a model without matrix products or convolutions: nothing to check
        return (
            None
            if want == "float32"
            else f"{framework}: no matrix product or convolution in the training step, so its "
            f"{want} compute could not be checked"
        )
    if not observed.get(want):
        raise BackendError(
            f"Expected {framework}'s training step to compute in {want} (precision="
            f"{config.precision!r}). Received: its matrix products and convolutions ran in "
            f"{observed or 'no dtype observed'}"
        )
    others = {k: v for k, v in observed.items() if k != want}
    if others:
        return (
            f"{framework}: {sum(others.values())} of {sum(observed.values())} matrix products / "
            f"convolutions of the training step ran in {others}, not {want}"
        )
    return None
