"""Scenarios: ways of driving a Model, each with a validity rule.

* ``latency``: one sample at a time (batch 1), as MLPerf's single-stream scenario.
* ``throughput``: offline, one cell per batch size; samples/s over the measured loop; halves the
  batch on out-of-memory and says so.
* ``server``: Poisson arrivals at a target rate; p99 latency and achieved rate; optionally the
  highest rate whose p99 stays under a bound.
* ``accuracy``: the whole split through the model and the task's metrics.

Each runner returns a JSON-safe dict with ``timing`` (or ``None``), ``metrics`` and ``validity``
(``{"valid": bool, "reasons": [...], "notes": [...], "rule": {...}}``); an invalid result is kept
and marked, never dropped.

Example:
    >>> from dlbench.execution.scenarios import run_scenario, names
    >>> names()
    ['latency', 'throughput', 'server', 'accuracy']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.scenarios._common import is_oom
from dlbench.execution.scenarios.accuracy import accuracy
from dlbench.execution.scenarios.offline import latency, throughput
from dlbench.execution.scenarios.server import server

ScenarioFn = Callable[..., dict[str, Any]]

SCENARIOS: dict[str, ScenarioFn] = {
    "latency": latency,
    "throughput": throughput,
    "server": server,
    "accuracy": accuracy,
}

__all__ = [
    "SCENARIOS",
    "accuracy",
    "is_oom",
    "latency",
    "names",
    "run_scenario",
    "server",
    "throughput",
]


def names() -> list[str]:
    return list(SCENARIOS)


def run_scenario(name: str, model: Any, dataset: Dataset, **kwargs: Any) -> dict[str, Any]:
    """Run scenario ``name`` (see :data:`SCENARIOS`) with its keyword options.

    GPU allocator peaks that can be reset are reset first, so a cell's memory is its own.
    """
    from dlbench.execution.memory import reset_peaks

    try:
        fn = SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"Unknown scenario {name!r}. Expected one of: {names()}") from None
    reset_peaks(model)
    return fn(model, dataset, **kwargs)
