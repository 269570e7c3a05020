"""Scenarios: ways of driving a Model, each with a validity rule.

* ``latency``: one sample at a time (batch 1), as MLPerf's single-stream scenario.
* ``throughput``: offline, one cell per batch size; samples/s over the measured loop; halves the
  batch on out-of-memory and says so.
* ``server``: Poisson arrivals at a target rate; p99 latency and achieved rate; optionally the
  highest rate whose p99 stays under a bound.
* ``accuracy``: the whole split through the model and the task's metrics (for a detector: its
  post-processing too, the 12 COCO stats and the per-image timing split, see
  :mod:`dlbench.execution.scenarios.detection`).
* ``training``: the model trained for some steps (or epochs) with the backend's trainer: step
  time, samples/s, the loss of every step, final accuracies, time to a target accuracy; the step
  losses of every backend checked against a reference backend's
  (:mod:`dlbench.execution.scenarios.training`).

Each runner returns a JSON-safe dict with ``timing`` (or ``None``), ``metrics`` and ``validity``
(``{"valid": bool, "reasons": [...], "notes": [...], "rule": {...}}``); an invalid result is kept
and marked, never dropped.

Example:
    >>> from dlbench.execution.scenarios import run_scenario, names
    >>> names()
    ['latency', 'throughput', 'server', 'accuracy', 'training']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.scenarios._common import is_oom
from dlbench.execution.scenarios.accuracy import accuracy
from dlbench.execution.scenarios.offline import latency, throughput
from dlbench.execution.scenarios.options import (
    AccuracyOptions,
    ServerOptions,
    TimedOptions,
    TrainingOptions,
)
from dlbench.execution.scenarios.server import server
from dlbench.execution.scenarios.training import training
from dlbench.options import strict_from_dict

ScenarioFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """A scenario: its function, its options dataclass, and the injection points tests use."""

    name: str
    run: ScenarioFn
    options: type
    #: keyword arguments that are not options: a fake clock (and wait) in tests, the energy
    #: meter the worker reads around the measured loop, a detector's post-processing
    hooks: tuple[str, ...] = ("clock",)

    @property
    def summary(self) -> str:
        """The first line of the scenario function's docstring."""
        return (self.run.__doc__ or "").strip().splitlines()[0]

    def make_options(self, options: Any = None, **overrides: Any) -> Any:
        """This scenario's options from an instance, a dict or keyword arguments (strictly)."""
        if isinstance(options, self.options) and not overrides:
            return options
        data = {}
        if isinstance(options, self.options):
            data = {f.name: getattr(options, f.name) for f in fields(self.options)}
        elif options is not None:
            data = dict(options)
        data.update(overrides)
        return strict_from_dict(self.options, data, f"{self.name} scenario option")


#: The one list of scenarios (names, functions, options); the config and the CLI read it.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("latency", latency, TimedOptions, hooks=("clock", "meter")),
        Scenario("throughput", throughput, TimedOptions, hooks=("clock", "meter")),
        Scenario("server", server, ServerOptions, hooks=("clock", "wait")),
        Scenario("accuracy", accuracy, AccuracyOptions, hooks=("detection",)),
        Scenario("training", training, TrainingOptions, hooks=("context",)),
    )
}

__all__ = [
    "SCENARIOS",
    "Scenario",
    "AccuracyOptions",
    "ServerOptions",
    "TimedOptions",
    "TrainingOptions",
    "accuracy",
    "get",
    "is_oom",
    "latency",
    "names",
    "run_scenario",
    "server",
    "throughput",
    "training",
]


def names() -> list[str]:
    return list(SCENARIOS)


def get(name: str) -> Scenario:
    """The scenario called ``name``.

    Raises:
        ConfigError: no such scenario.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"Unknown scenario {name!r}. Expected one of: {names()}") from None


def run_scenario(
    name: str,
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int | None = None,
    options: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run scenario ``name`` with its own options and nothing else.

    Args:
        name: One of :func:`names`.
        model: A :class:`~dlbench.model.backend.Model`.
        dataset: Where the batch (or the split) comes from.
        batch_size: The cell's batch size (the scenario's default when None).
        options: The scenario's options dataclass (or a dict of its fields).
        **kwargs: Option fields given one by one, or the scenario's test hooks (``clock``...).

    Raises:
        ConfigError: an unknown scenario, or an option this scenario does not have.

    GPU allocator peaks that can be reset are reset first, so a cell's memory is its own.
    """
    from dlbench.execution.memory import reset_peaks

    scenario = get(name)
    hooks = {k: kwargs.pop(k) for k in list(kwargs) if k in scenario.hooks}
    opts = scenario.make_options(options, **kwargs)
    call = {f.name: getattr(opts, f.name) for f in fields(opts)}
    if batch_size is not None:
        call["batch_size"] = batch_size
    reset_peaks(model)
    return scenario.run(model, dataset, **call, **hooks)
