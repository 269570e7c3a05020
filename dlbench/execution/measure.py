"""The stopwatch every scenario uses: :func:`time_model` **(public)**.

Timing contract:

* ``mode="compute"``: the input is converted and placed on the device once, outside the timed
  region (``x = model.to_device(batch)``); each timed call is ``model.sync(model.forward(x))``.
  ``sync`` is the backend's own wait: nothing for CPU calls that return ready values,
  ``block_until_ready`` for JAX, CUDA synchronisation for torch on GPU, realised outputs for
  TensorFlow, IO binding for ONNX Runtime on GPU.
* ``mode="end_to_end"``: each timed call goes from host NumPy to host NumPy:
  ``y = forward(to_device(batch)); sync(y); to_numpy(y)``.

The timed region is exactly ``t0 = clock(); <the call>; t1 = clock()`` with
:func:`time.perf_counter_ns`: the calls run in a generator that yields after ``t1`` and resumes
before ``t0``, so the bookkeeping (appending the sample, the stopping tests) sits between timed
regions and nothing is allocated inside one that the framework does not allocate itself.
``benchmarks/overhead.py`` checks this against a hand-written loop.

Warm-up: at least ``warmup_min`` calls and ``warmup_min_time`` seconds, then until the median of
the last ``steady_window`` calls is within ``steady_tolerance`` of the median of the window before
(the first call, usually compilation, is never part of a window), capped by ``warmup_max`` calls
and ``warmup_time`` seconds. Measurement: at least ``min_iters`` calls AND ``min_time`` seconds;
optionally (``target_ci``) until the 95% bootstrap CI of the median is narrower than
``target_ci`` times the median; never more than ``max_iters`` calls or ``max_time`` seconds.

Throughput is samples processed divided by the wall time of the measured loop (from before the
first measured call to after the last one, minus the time spent in the ``target_ci`` tests),
never derived from a mean or a median.

Example:
    >>> import numpy as np, dlbench
    >>> spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8))
    >>> model = dlbench.get_backend("numpy").build(spec)
    >>> t = time_model(model, np.zeros((4, 1, 8, 8), np.float32), min_iters=5, min_time=0.01)
    >>> t.n >= 5 and t.median > 0 and t.throughput > 0
    True
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlbench.analysis.stats import relative_ci_width, summarize
from dlbench.errors import ConfigError, DlbenchError
from dlbench.execution.allocator import FaultCounter, faults_dict
from dlbench.options import strict_from_dict

MODES = ("compute", "end_to_end")

#: Stop reasons of the measured loop.
STOP_REASONS = ("min_iters_and_min_time", "target_ci", "max_iters", "max_time")
#: Why warm-up ended.
WARMUP_REASONS = ("steady", "warmup_max", "warmup_time")

Clock = Callable[[], int]


@dataclass
class StopRule:
    """When warm-up ends and when measuring stops.

    The defaults give stable numbers for small models in about a second per cell; raise
    ``min_time`` (or set ``target_ci``) for publication numbers.

    Attributes:
        warmup_min: Warm-up calls always made (the first one is reported as first-call time).
        warmup_min_time: Warm-up always lasts at least this many seconds (caches, clocks,
            allocator pools settle even when a few calls look steady).
        warmup_max: Warm-up never exceeds this many calls...
        warmup_time: ...nor this many seconds.
        steady_window: Warm-up ends when the median of the last ``steady_window`` calls is
            within ``steady_tolerance`` of the median of the window before it.
        steady_tolerance: Relative tolerance for the steadiness test.
        min_iters: Measure at least this many calls...
        min_time: ...and at least this many seconds.
        max_iters: Stop after this many measured calls at most.
        max_time: Stop after this many measured seconds at most (a cap on everything else).
        target_ci: If set, keep measuring (up to the caps) until the 95% bootstrap CI of the
            median is narrower than ``target_ci`` times the median (e.g. 0.02 for +-1%).
    """

    warmup_min: int = 3
    warmup_min_time: float = 0.05
    warmup_max: int = 10_000
    warmup_time: float = 3.0
    steady_window: int = 5
    steady_tolerance: float = 0.10
    min_iters: int = 20
    min_time: float = 0.5
    max_iters: int = 10_000_000
    max_time: float = 30.0
    target_ci: float | None = None

    def __post_init__(self) -> None:
        for name in ("warmup_min", "warmup_max", "steady_window", "min_iters", "max_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"Expected `{name}` to be a positive int. Received: {name}={value!r}"
                )
        for name in ("warmup_min_time", "warmup_time", "min_time", "max_time"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ConfigError(
                    f"Expected `{name}` to be a non-negative number of seconds. "
                    f"Received: {name}={value!r}"
                )
        tol = self.steady_tolerance
        if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < 1:
            raise ConfigError(
                f"Expected `steady_tolerance` in (0, 1). Received: steady_tolerance={tol!r}"
            )
        if self.warmup_min > self.warmup_max:
            raise ConfigError(
                f"Expected warmup_min <= warmup_max. "
                f"Received: {self.warmup_min} > {self.warmup_max}"
            )
        if self.warmup_min_time > self.warmup_time:
            raise ConfigError(
                f"Expected warmup_min_time <= warmup_time. "
                f"Received: {self.warmup_min_time} > {self.warmup_time}"
            )
        if self.min_iters > self.max_iters:
            raise ConfigError(
                f"Expected min_iters <= max_iters. Received: {self.min_iters} > {self.max_iters}"
            )
        if self.min_time > self.max_time:
            raise ConfigError(
                f"Expected min_time <= max_time. Received: {self.min_time} > {self.max_time}"
            )
        ci = self.target_ci
        if ci is not None and (
            not isinstance(ci, (int, float)) or isinstance(ci, bool) or not 0 < ci < 1
        ):
            raise ConfigError(f"Expected `target_ci` in (0, 1). Received: target_ci={ci!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StopRule:
        return strict_from_dict(cls, d, "stop-rule option")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """Per-call timing samples (seconds) and what is derived from them.

    Every statistic of :func:`dlbench.analysis.stats.summarize` is also an attribute: ``t.median``,
    ``t.p90``, ``t.p99``, ``t.iqr``, ``t.ci95_low``, ``t.noisy``...

    Attributes:
        samples: Raw per-call times of the measured loop, seconds.
        batch_size: Samples per call.
        mode: ``"compute"`` or ``"end_to_end"``.
        wall_time: Wall time of the measured loop, seconds (what throughput divides by).
        warmup_samples: Per-call times of the warm-up, seconds (the first is ``first_call``).
        first_call: Time of the first call this function made, seconds.
        stop_reason: One of :data:`STOP_REASONS` (or a scenario's own).
        stats: :func:`dlbench.analysis.stats.summarize` of ``samples``.
        warmup_reason: One of :data:`WARMUP_REASONS`.
        target_ci: The CI target asked for (``None``: none).
        target_ci_met: Whether it was reached (``None`` when none was asked for).
        clock_overhead: Median time of an empty timed region with this clock, seconds (the
            floor under every sample; reported, never subtracted).
        meter_reading: What ``meter.stop()`` returned when :func:`time_model` was given a
            ``meter`` (an :class:`dlbench.execution.energy.EnergyReading`); not serialised.
        page_faults: Minor/major page faults of the process over the measured loop, totals and
            per call (:func:`dlbench.execution.allocator.faults_dict`); ``None`` when not read.
    """

    samples: np.ndarray
    batch_size: int
    mode: str
    wall_time: float
    warmup_samples: np.ndarray
    first_call: float
    stop_reason: str
    stats: dict[str, Any] = field(default_factory=dict)
    warmup_reason: str = "steady"
    target_ci: float | None = None
    target_ci_met: bool | None = None
    clock_overhead: float = 0.0
    meter_reading: Any = None
    page_faults: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.samples = np.asarray(self.samples, dtype=np.float64)
        self.warmup_samples = np.asarray(self.warmup_samples, dtype=np.float64)
        if not self.stats and len(self.samples):
            self.stats = summarize(self.samples)

    @property
    def n(self) -> int:
        return int(len(self.samples))

    @property
    def throughput(self) -> float:
        """Samples per second over the measured loop: ``batch_size * n / wall_time``."""
        return self.batch_size * self.n / self.wall_time if self.wall_time > 0 else float("nan")

    def __getattr__(self, name: str) -> Any:
        stats = self.__dict__.get("stats") or {}
        if name in stats:
            return stats[name]
        raise AttributeError(f"'Timing' object has no attribute {name!r}")

    def to_dict(self, *, keep_samples: bool = True) -> dict[str, Any]:
        thr = self.throughput
        out = {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "n": self.n,
            "wall_time_s": self.wall_time,
            "throughput": thr if np.isfinite(thr) else None,
            "first_call_s": self.first_call,
            "warmup_calls": int(len(self.warmup_samples)),
            "warmup_reason": self.warmup_reason,
            "stop_reason": self.stop_reason,
            "target_ci": self.target_ci,
            "target_ci_met": self.target_ci_met,
            "clock_overhead_s": self.clock_overhead,
            "stats": dict(self.stats),
        }
        if self.page_faults is not None:
            out["page_faults"] = dict(self.page_faults)
        if keep_samples:
            out["samples_s"] = [float(s) for s in self.samples]
            out["warmup_samples_s"] = [float(s) for s in self.warmup_samples]
        return out


def clock_overhead_ns(clock: Clock = time.perf_counter_ns, repeats: int = 101) -> int:
    """Median duration of an empty timed region ``t0 = clock(); t1 = clock()``, in ns."""
    diffs = []
    for _ in range(repeats):
        t0 = clock()
        t1 = clock()
        diffs.append(t1 - t0)
    return int(np.median(diffs))


def timed_calls(
    model: Any, batch: np.ndarray, mode: str, clock: Clock
) -> Iterator[tuple[int, int]]:
    """Yield ``(t0, t1)`` around one call at a time, following the timing contract.

    The generator suspends after ``t1`` and resumes right before the next ``t0``: the caller's
    bookkeeping is never inside a timed region. In ``compute`` mode the input is prepared here,
    once, before the first call.
    """
    forward, sync = model.forward, model.sync
    if mode == "compute":
        x = model.to_device(batch)
        while True:
            t0 = clock()
            sync(forward(x))
            t1 = clock()
            yield t0, t1
    else:
        to_device, to_numpy = model.to_device, model.to_numpy
        while True:
            t0 = clock()
            y = forward(to_device(batch))
            sync(y)
            to_numpy(y)
            t1 = clock()
            yield t0, t1


def is_steady(warm: list[int], window: int, tolerance: float) -> bool:
    """The steadiness test: the median of the last ``window`` calls is within ``tolerance``
    (relative) of the median of the ``window`` calls before; the first call never counts."""
    if len(warm) - 1 < 2 * window:
        return False
    recent = float(np.median(warm[-window:]))
    before = float(np.median(warm[-2 * window : -window]))
    return before > 0 and abs(recent - before) <= tolerance * before


class NotAModelError(DlbenchError, TypeError):
    """:func:`time_model` was handed something that is not a dlbench Model."""


_MODEL_METHODS = ("to_device", "forward", "sync", "to_numpy")
#: Top-level module of a class -> (what it is, the backend whose ``wrap()`` takes it).
_NATIVE = {
    "torch": ("a PyTorch module", "torch"),
    "torchvision": ("a PyTorch module", "torch"),
    "timm": ("a PyTorch module", "torch"),
    "keras": ("a Keras model", "tensorflow"),
    "tf_keras": ("a Keras model", "tensorflow"),
    "tensorflow": ("a TensorFlow model or function", "tensorflow"),
    "jax": ("a JAX function", "jax"),
    "jaxlib": ("a JAX function", "jax"),
    "flax": ("a Flax module", "jax"),
    "equinox": ("an Equinox module", "jax"),
    "haiku": ("a Haiku module", "jax"),
    "onnx": ("an ONNX model", "onnxruntime"),
    "onnxruntime": ("an ONNX Runtime session", "onnxruntime"),
}


def _native_kind(model: Any) -> tuple[str, str] | None:
    """What framework ``model`` comes from, by its classes' modules (imports nothing)."""
    for cls in type(model).__mro__:
        top = (getattr(cls, "__module__", "") or "").split(".")[0]
        if top in _NATIVE:
            return _NATIVE[top]
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx"):
        return ("an ONNX file path", "onnxruntime")
    return None


def check_model(model: Any) -> None:
    """Raise a clear :class:`NotAModelError` unless ``model`` is a dlbench Model (has
    ``to_device``, ``forward``, ``sync`` and ``to_numpy``), saying how to ``wrap()`` a native one.
    """
    missing = [m for m in _MODEL_METHODS if not callable(getattr(model, m, None))]
    if not missing:
        return
    name = type(model).__qualname__
    kind = _native_kind(model)
    if kind is not None:
        what, backend = kind
        args = "model" if backend == "onnxruntime" else "model, input_shape=(C, H, W)"
        if backend == "jax":
            args = "fn, params=params, input_shape=(C, H, W)"
        hint = f'wrap it first: dlbench.get_backend("{backend}").wrap({args})'
        received = f"{what} ({name})"
    elif callable(model):
        received = f"a plain function or callable ({name})"
        hint = (
            "wrap it first with the backend of its framework, e.g. "
            'dlbench.get_backend("jax").wrap(fn, params=params, input_shape=(C, H, W)) or '
            'dlbench.get_backend("tensorflow").wrap(fn, input_shape=(C, H, W))'
        )
    else:
        received = f"a {name}"
        hint = "build one with dlbench.get_backend(name).build(spec) or wrap a native model"
    raise NotAModelError(
        f"Expected a dlbench Model (with {', '.join(_MODEL_METHODS)}) for time_model. "
        f"Received {received}, which lacks {', '.join(missing)}: {hint}."
    )


def time_model(
    model: Any,
    batch: np.ndarray,
    mode: str = "compute",
    *,
    stop_rule: StopRule | None = None,
    clock: Clock = time.perf_counter_ns,
    meter: Any = None,
    **stop_options: Any,
) -> Timing:
    """Time ``model`` on ``batch`` following the timing contract in the module docstring.

    Args:
        model: A :class:`dlbench.model.backend.Model` (anything with ``to_device``, ``forward``,
            ``sync`` and ``to_numpy``).
        batch: Host NumPy input, float32 NCHW (``batch.shape[0]`` is the batch size).
        mode: ``"compute"`` or ``"end_to_end"``.
        stop_rule: A :class:`StopRule`; or pass its fields as keyword arguments.
        clock: A nanosecond clock (tests pass a fake one).
        meter: Anything with ``start()`` and ``stop()`` (an
            :class:`dlbench.execution.energy.EnergyMonitor`): started right before the measured
            loop (after the warm-up) and stopped right after it, never inside a timed call;
            ``stop()``'s result is :attr:`Timing.meter_reading`.

    Returns:
        A :class:`Timing` with the raw samples and their statistics.

    Raises:
        NotAModelError: ``model`` is not a dlbench Model (a raw ``nn.Module``, ``keras.Model``,
            function, ...): the message says which ``get_backend(...).wrap()`` to call first.

    Example:
        >>> t = time_model(model, batch, "compute", min_iters=50, min_time=1.0)  # doctest: +SKIP
        >>> t.median, t.p99, t.throughput  # doctest: +SKIP
    """
    check_model(model)
    if mode not in MODES:
        raise ConfigError(f"Expected mode in {MODES}. Received: mode={mode!r}")
    if stop_rule is None:
        stop_rule = StopRule.from_dict(stop_options)
    elif stop_options:
        raise ConfigError("Pass either stop_rule or stop-rule keyword options, not both.")
    rule = stop_rule
    batch = np.asarray(batch)
    overhead = clock_overhead_ns(clock)
    calls = timed_calls(model, batch, mode, clock)

    # Warm-up: at least warmup_min calls and warmup_min_time, then until steady, within caps.
    warm: list[int] = []
    warm_min_ns, warm_max_ns = rule.warmup_min_time * 1e9, rule.warmup_time * 1e9
    w, tol = rule.steady_window, rule.steady_tolerance
    warm_start = None
    while True:
        t0, t1 = next(calls)
        if warm_start is None:
            warm_start = t0
        warm.append(t1 - t0)
        n, elapsed = len(warm), t1 - warm_start
        if n >= rule.warmup_max:
            warmup_reason = "warmup_max"
            break
        if n < rule.warmup_min or elapsed < warm_min_ns:
            continue
        if is_steady(warm, w, tol):
            warmup_reason = "steady"
            break
        if elapsed >= warm_max_ns:
            warmup_reason = "warmup_time"
            break

    # Measurement. A collection now, so garbage left by the warm-up is not collected inside it.
    gc.collect()
    samples: list[int] = []
    append = samples.append
    min_iters, max_iters = rule.min_iters, rule.max_iters
    min_ns, max_ns = rule.min_time * 1e9, rule.max_time * 1e9
    target = rule.target_ci
    next_check = max(min_iters, 32)
    paused = 0  # ns spent in the CI tests, excluded from the loop's wall time
    target_met: bool | None = None if target is None else False
    if meter is not None:
        meter.start()
    faults = FaultCounter()  # issue 23: page faults per call (read outside the timed regions)
    faults.start()
    start = clock()
    while True:
        t0, t1 = next(calls)
        before_t1 = paused  # a pause of this iteration comes after t1: not in the wall time
        append(t1 - t0)
        n = len(samples)
        if n >= min_iters and t1 - start - paused >= min_ns:
            if target is None:
                reason = "min_iters_and_min_time"
                break
            if n >= next_check:
                c0 = clock()
                width = relative_ci_width(samples, resamples=1000)
                next_check = int(n * 1.25) + 1  # geometric: the tests cost O(n log n) in all
                paused += clock() - c0
                if width <= target:
                    target_met = True
                    reason = "target_ci"
                    break
        if n >= max_iters:
            reason = "max_iters"
            break
        if t1 - start >= max_ns:
            reason = "max_time"
            break
    minor_faults, major_faults = faults.stop()
    reading = meter.stop() if meter is not None else None
    calls.close()
    return Timing(
        samples=np.asarray(samples, dtype=np.float64) * 1e-9,
        batch_size=int(batch.shape[0]) if batch.ndim else 1,
        mode=mode,
        wall_time=(t1 - start - before_t1) * 1e-9,
        warmup_samples=np.asarray(warm, dtype=np.float64) * 1e-9,
        first_call=warm[0] * 1e-9,
        stop_reason=reason,
        warmup_reason=warmup_reason,
        target_ci=target,
        target_ci_met=target_met,
        clock_overhead=overhead * 1e-9,
        meter_reading=reading,
        page_faults=faults_dict(minor_faults, major_faults, len(samples)),
    )


def stop_rule_dict(rule: StopRule) -> dict[str, Any]:
    return asdict(rule)
