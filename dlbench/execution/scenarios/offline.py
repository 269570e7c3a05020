"""The ``latency`` (single-stream) and ``throughput`` (offline) scenarios."""

from __future__ import annotations

from typing import Any

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.measure import StopRule, time_model
from dlbench.execution.memory import free_gpu_cache
from dlbench.execution.scenarios._common import is_oom, timed_batch, timing_validity


def latency(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int = 1,
    timing_mode: str = "compute",
    stop_rule: StopRule | None = None,
    seed: int = 0,
    clock: Any = None,
    meter: Any = None,
) -> dict[str, Any]:
    """Single-stream latency: batch 1, one query at a time.

    Validity: at least ``min_iters`` calls and ``min_time`` seconds measured (and the
    ``target_ci`` reached, when one is set).
    """
    if batch_size != 1:
        raise ConfigError(f"Expected batch_size=1 for the latency scenario. Received: {batch_size}")
    rule = stop_rule or StopRule()
    kw = _timer_hooks(clock, meter)
    timing = time_model(model, timed_batch(dataset, 1, seed), timing_mode, stop_rule=rule, **kw)
    out = {"timing": timing.to_dict(), "metrics": {}, "validity": timing_validity(timing, rule)}
    return _with_reading(out, timing, meter)


def throughput(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int,
    timing_mode: str = "compute",
    stop_rule: StopRule | None = None,
    seed: int = 0,
    clock: Any = None,
    meter: Any = None,
) -> dict[str, Any]:
    """Offline throughput at one batch size (samples/s over the measured loop).

    On an out-of-memory error the batch is halved and tried again (down to 1); the record says
    so in ``oom`` and in the validity notes, and ``timing.batch_size`` is the batch measured.
    Validity: as ``latency``.
    """
    rule = stop_rule or StopRule()
    kw = _timer_hooks(clock, meter)
    size, failed = batch_size, []
    while True:
        error = None
        try:
            timing = time_model(
                model, timed_batch(dataset, size, seed), timing_mode, stop_rule=rule, **kw
            )
            break
        except Exception as exc:
            if not is_oom(exc, model) or size == 1:
                raise
            error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        # Outside the except block, so the traceback (and the tensors its frames hold) is gone.
        failed.append({"batch_size": size, "error": error})
        free_gpu_cache(model)
        size = max(1, size // 2)
    out = {"timing": timing.to_dict(), "metrics": {}, "validity": timing_validity(timing, rule)}
    if failed:
        out["oom"] = {"requested_batch_size": batch_size, "batch_size": size, "failed": failed}
        out["validity"]["notes"].insert(
            0,
            f"out of memory at batch {batch_size}: shrunk to batch {size} "
            f"(tried {', '.join(str(f['batch_size']) for f in failed)})",
        )
    return _with_reading(out, timing, meter)


#: Key of a timed record holding the energy meter's reading (an object, not JSON): the worker
#: turns it into the cell's ``energy`` record (:func:`dlbench.execution.energy.energy_record`).
READING_KEY = "energy_reading"


def _timer_hooks(clock: Any, meter: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"clock": clock} if clock is not None else {}
    if meter is not None:  # read right before and right after the measured loop, never inside
        kw["meter"] = meter
    return kw


def _with_reading(out: dict[str, Any], timing: Any, meter: Any) -> dict[str, Any]:
    if meter is not None:
        out[READING_KEY] = timing.meter_reading
    return out
