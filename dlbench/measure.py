"""Public import path of the timer: ``dlbench.measure.time_model`` (it lives in :mod:`dlbench.execution.measure`)."""

from dlbench.execution.measure import (  # noqa: F401
    MODES,
    StopRule,
    Timing,
    stop_rule_dict,
    time_model,
    timed_calls,
)

__all__ = ["time_model", "timed_calls", "StopRule", "Timing", "MODES", "stop_rule_dict"]
