"""Scenarios: ways of driving a Model, each with a validity rule.

* ``latency``: one sample at a time (batch 1), as MLPerf's single-stream scenario.
* ``throughput``: offline, one cell per batch size; samples/s over the measured loop.
* ``accuracy``: the whole split through the model and the task's metrics.

Each runner returns a JSON-safe dict with ``timing`` (or ``None``), ``metrics`` and ``validity``
(``{"valid": bool, "reasons": [...]}``); an invalid result is kept and marked, never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.measure import StopRule, time_model

ScenarioFn = Callable[..., dict[str, Any]]


def _validity(timing: Any, rule: StopRule) -> dict[str, Any]:
    reasons = []
    if timing.n < rule.min_iters:
        reasons.append(
            f"only {timing.n} calls measured; the rule asks for at least {rule.min_iters}"
        )
    if timing.wall_time < rule.min_time:
        reasons.append(
            f"measured for {timing.wall_time:.3f} s; the rule asks for at least {rule.min_time} s"
        )
    return {"valid": not reasons, "reasons": reasons}


def _timed_batch(dataset: Dataset, batch_size: int, seed: int) -> np.ndarray:
    if batch_size <= len(dataset):
        return dataset.get_batch(np.arange(batch_size)).inputs
    return dataset.sample(batch_size, seed=seed).inputs


def latency(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int = 1,
    timing_mode: str = "compute",
    stop_rule: StopRule | None = None,
    seed: int = 0,
    **_: Any,
) -> dict[str, Any]:
    """Single-stream latency: batch 1, one query at a time."""
    if batch_size != 1:
        raise ConfigError(f"Expected batch_size=1 for the latency scenario. Received: {batch_size}")
    rule = stop_rule or StopRule()
    timing = time_model(model, _timed_batch(dataset, 1, seed), timing_mode, stop_rule=rule)
    return {"timing": timing.to_dict(), "metrics": {}, "validity": _validity(timing, rule)}


def throughput(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int,
    timing_mode: str = "compute",
    stop_rule: StopRule | None = None,
    seed: int = 0,
    **_: Any,
) -> dict[str, Any]:
    """Offline throughput at one batch size."""
    rule = stop_rule or StopRule()
    timing = time_model(model, _timed_batch(dataset, batch_size, seed), timing_mode, stop_rule=rule)
    return {"timing": timing.to_dict(), "metrics": {}, "validity": _validity(timing, rule)}


def accuracy(
    model: Any, dataset: Dataset, *, batch_size: int, limit: int | None = None, **_: Any
) -> dict[str, Any]:
    """The whole split (or its first ``limit`` samples) through the model and the metrics."""
    from dlbench.evaluate import evaluate_outputs

    outputs, targets = [], []
    start = time.perf_counter()
    for batch in dataset.batches(batch_size, limit=limit):
        outputs.append(model.predict(batch.inputs))
        targets.append(batch.targets)
    wall = time.perf_counter() - start
    n = sum(len(o) for o in outputs)
    metrics = evaluate_outputs(dataset, outputs, targets)
    reasons = []
    if dataset.info.synthetic:
        reasons.append("synthetic data: accuracy on random inputs and labels means nothing")
    if n == 0:
        reasons.append("no samples were evaluated")
    return {
        "timing": None,
        "metrics": metrics,
        "evaluated_samples": n,
        "eval_wall_time_s": wall,
        "validity": {"valid": not reasons, "reasons": reasons},
    }


SCENARIOS: dict[str, ScenarioFn] = {
    "latency": latency,
    "throughput": throughput,
    "accuracy": accuracy,
}


def names() -> list[str]:
    return list(SCENARIOS)


def run_scenario(name: str, model: Any, dataset: Dataset, **kwargs: Any) -> dict[str, Any]:
    """Run scenario ``name`` (see :data:`SCENARIOS`)."""
    try:
        fn = SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"Unknown scenario {name!r}. Expected one of: {names()}") from None
    return fn(model, dataset, **kwargs)
