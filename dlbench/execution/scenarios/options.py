"""Each scenario's own options, as validated dataclasses.

A worker hands a scenario only the options that scenario declares (no ``**kwargs`` swallowing):
:meth:`dlbench.execution.config.BenchmarkConfig.scenario_options` builds them from the benchmark
config, and :func:`dlbench.execution.scenarios.run_scenario` refuses an option the scenario does
not have. Field names are the scenario function's keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import ConfigError
from dlbench.execution.measure import MODES, StopRule


def _positive_or_none(name: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
    ):
        raise ConfigError(
            f"Expected `{name}` to be a positive number or None. Received: {name}={value!r}"
        )


@dataclass(frozen=True)
class TimedOptions:
    """Options of the timed scenarios (``latency``, ``throughput``)."""

    timing_mode: str = "compute"
    stop_rule: StopRule = field(default_factory=StopRule)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.timing_mode not in MODES:
            raise ConfigError(
                f"Expected timing_mode in {MODES}. Received: timing_mode={self.timing_mode!r}"
            )
        if isinstance(self.stop_rule, dict):
            object.__setattr__(self, "stop_rule", StopRule.from_dict(self.stop_rule))
        elif self.stop_rule is None:
            object.__setattr__(self, "stop_rule", StopRule())
        elif not isinstance(self.stop_rule, StopRule):
            raise ConfigError(
                f"Expected `stop_rule` to be a StopRule or a dict. Received: {self.stop_rule!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"Expected `seed` to be an int >= 0. Received: seed={self.seed!r}")


@dataclass(frozen=True)
class ServerOptions(TimedOptions):
    """Options of the ``server`` scenario (see :func:`dlbench.execution.scenarios.server.server`)."""

    server_rate: float | None = None
    server_p99_bound: float | None = None
    server_search: bool | None = None
    server_min_queries: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_or_none("server_rate", self.server_rate)
        _positive_or_none("server_p99_bound", self.server_p99_bound)
        if self.server_search is not None and not isinstance(self.server_search, bool):
            raise ConfigError(
                f"Expected `server_search` to be true, false or None. "
                f"Received: server_search={self.server_search!r}"
            )
        if self.server_search and self.server_p99_bound is None:
            raise ConfigError("Expected `server_p99_bound` for the rate search. Received: None")
        q = self.server_min_queries
        if not isinstance(q, int) or isinstance(q, bool) or q < 1:
            raise ConfigError(
                f"Expected `server_min_queries` to be an int >= 1. Received: server_min_queries={q!r}"
            )


@dataclass(frozen=True)
class AccuracyOptions:
    """Options of the ``accuracy`` scenario."""

    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (
            not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1
        ):
            raise ConfigError(f"Expected `limit` to be an int >= 1. Received: limit={self.limit!r}")


#: Steps a training cell runs when neither ``train_steps`` nor ``epochs`` is given.
DEFAULT_TRAIN_STEPS = 50


@dataclass(frozen=True)
class TrainingOptions:
    """Options of the ``training`` scenario (see
    :func:`dlbench.execution.scenarios.training.training`).

    ``train_steps`` and ``epochs`` are exclusive; neither: :data:`DEFAULT_TRAIN_STEPS` steps.
    ``train_options`` are :class:`dlbench.train.TrainConfig` fields (``optimizer``, ``lr``...);
    the cell's batch size, precision and the run's seed and threads are set by the run.
    """

    train_steps: int | None = None
    epochs: int | None = None
    target_accuracy: float | None = None
    eval_limit: int | None = 1024
    train_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_steps", "epochs", "eval_limit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(
                    f"Expected `{name}` to be an int >= 1 or None. Received: {name}={v!r}"
                )
        if self.train_steps is not None and self.epochs is not None:
            raise ConfigError(
                "Expected `train_steps` or `epochs`, not both. Received: "
                f"train_steps={self.train_steps!r}, epochs={self.epochs!r}"
            )
        t = self.target_accuracy
        if t is not None and (
            not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 < t <= 1
        ):
            raise ConfigError(
                f"Expected `target_accuracy` in (0, 1] or None. Received: target_accuracy={t!r}"
            )
        if not isinstance(self.train_options, dict):
            raise ConfigError(
                "Expected `train_options` to be a table/dict of training fields. "
                f"Received: train_options={self.train_options!r}"
            )
        reserved = {"batch_size", "epochs", "seed", "folds", "target_accuracy", "precision"}
        bad = sorted(reserved & set(self.train_options))
        if bad:
            raise ConfigError(
                "Expected `train_options` without the fields the run sets itself "
                f"({sorted(reserved)}). Received: {bad}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"Expected `seed` to be an int >= 0. Received: seed={self.seed!r}")

    @property
    def steps_mode(self) -> bool:
        """Whether the cell runs a number of steps (not whole epochs)."""
        return self.epochs is None
