"""What every scenario shares: the timed batch, validity records, out-of-memory detection."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.data.dataset import Dataset
from dlbench.execution.measure import StopRule, Timing


def timed_batch(dataset: Dataset, batch_size: int, seed: int) -> np.ndarray:
    """The host batch a scenario times: the first ``batch_size`` samples (sampled with a seed when
    the split is smaller). Prepared before any timing starts."""
    if batch_size <= len(dataset):
        return dataset.get_batch(np.arange(batch_size)).inputs
    return dataset.sample(batch_size, seed=seed).inputs


def validity(reasons: list[str], notes: list[str] | None = None, **rule: Any) -> dict[str, Any]:
    """A validity record: ``valid`` (no reasons), the ``reasons`` it is INVALID, ``notes`` that do
    not invalidate it, and the ``rule`` that was applied."""
    return {
        "valid": not reasons,
        "reasons": list(reasons),
        "notes": list(notes or []),
        "rule": rule,
    }


def timing_validity(timing: Timing, rule: StopRule) -> dict[str, Any]:
    """The validity rule of the timed scenarios (latency, throughput).

    INVALID when fewer than ``min_iters`` calls or less than ``min_time`` seconds were measured
    (a cap stopped the loop first), or a ``target_ci`` was asked for and not reached.
    Notes (still valid): warm-up hit a cap before the time per call was steady; IQR/median high.
    """
    reasons, notes = [], []
    if timing.n < rule.min_iters:
        reasons.append(
            f"only {timing.n} calls measured; the rule asks for at least {rule.min_iters} "
            f"(stopped by {timing.stop_reason})"
        )
    if timing.wall_time < rule.min_time:
        reasons.append(
            f"measured for {timing.wall_time:.3f} s; the rule asks for at least {rule.min_time} s "
            f"(stopped by {timing.stop_reason})"
        )
    if timing.target_ci is not None and not timing.target_ci_met:
        reasons.append(
            f"the 95% CI of the median did not narrow to {timing.target_ci:.1%} of the median "
            f"before the {timing.stop_reason} cap"
        )
    if timing.warmup_reason != "steady":
        notes.append(
            f"warm-up stopped at its cap ({timing.warmup_reason}) before the time per call was "
            "steady"
        )
    if timing.stats.get("noisy"):
        ratio = timing.stats.get("iqr_ratio")
        notes.append(f"noisy: IQR is {ratio:.0%} of the median" if ratio else "noisy")
    return validity(
        reasons,
        notes,
        min_iters=rule.min_iters,
        min_time_s=rule.min_time,
        target_ci=rule.target_ci,
    )


def is_oom(exc: BaseException, model: Any = None) -> bool:
    """Whether ``exc`` is an out-of-memory error, judged by type name and message, so no
    framework is imported to tell: the markers of ``model``'s backend (its ``is_oom`` hook, from
    its manifest) when given, else those of every registered backend."""
    hook = getattr(getattr(model, "backend", None), "is_oom", None)
    if callable(hook):
        try:
            return bool(hook(exc))
        except Exception:  # a backend outside the registry: fall back on every manifest
            pass
    from dlbench.model.manifest import is_oom as matches
    from dlbench.registry import backends

    types: list[str] = []
    messages: list[str] = []
    for manifest in backends.manifests():
        types.extend(manifest.oom_types)
        messages.extend(manifest.oom_messages)
    return matches(exc, tuple(types), tuple(messages))
