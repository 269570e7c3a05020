"""The stopwatch every scenario uses: :func:`time_model`.

Timing contract:

* ``mode="compute"``: the input is converted and placed on the device once, outside the timed
  region; each timed call is ``forward(x)`` followed by the backend's own ``sync(y)``.
* ``mode="end_to_end"``: each timed call goes from host NumPy to host NumPy:
  ``to_numpy(sync(forward(to_device(batch))))``.

Calls are timed with :func:`time.perf_counter_ns`. Warm-up runs until per-call time is steady;
then at least ``min_iters`` calls AND at least ``min_time`` seconds are measured (optionally
until the 95% CI of the median is narrower than ``target_ci`` of the median), never longer than
``max_time``. Throughput is samples processed divided by the wall time of the measured loop.

Example:
    >>> import numpy as np, dlbench
    >>> spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8))
    >>> model = dlbench.get_backend("numpy").build(spec)
    >>> t = time_model(model, np.zeros((4, 1, 8, 8), np.float32), min_iters=5, min_time=0.01)
    >>> t.n >= 5
    True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.stats import bootstrap_median_ci, summarize

MODES = ("compute", "end_to_end")


@dataclass
class StopRule:
    """When warm-up ends and when measuring stops.

    Attributes:
        warmup_min: Warm-up calls always made (the first one is reported as first-call time).
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
    warmup_max: int = 200
    warmup_time: float = 3.0
    steady_window: int = 5
    steady_tolerance: float = 0.10
    min_iters: int = 20
    min_time: float = 0.5
    max_iters: int = 1_000_000
    max_time: float = 30.0
    target_ci: float | None = None

    def __post_init__(self) -> None:
        for name in ("warmup_min", "warmup_max", "steady_window", "min_iters", "max_iters"):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (0 if name == "warmup_min" else 1)
            ):
                raise ConfigError(
                    f"Expected `{name}` to be a positive int. Received: {name}={value!r}"
                )
        for name in ("warmup_time", "min_time", "max_time"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(
                    f"Expected `{name}` to be a non-negative number of seconds. Received: {name}={value!r}"
                )
        if self.min_iters > self.max_iters:
            raise ConfigError(
                f"Expected min_iters <= max_iters. Received: {self.min_iters} > {self.max_iters}"
            )
        if self.min_time > self.max_time:
            raise ConfigError(
                f"Expected min_time <= max_time. Received: {self.min_time} > {self.max_time}"
            )
        if self.target_ci is not None and not (0 < self.target_ci < 1):
            raise ConfigError(
                f"Expected `target_ci` in (0, 1). Received: target_ci={self.target_ci!r}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StopRule:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"Unknown stop-rule option(s) {unknown}. Expected some of: {sorted(known)}"
            )
        return cls(**d)


@dataclass
class Timing:
    """Per-call timing samples (seconds) and what is derived from them."""

    samples: np.ndarray
    batch_size: int
    mode: str
    wall_time: float
    warmup_samples: np.ndarray
    first_call: float
    stop_reason: str
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        out = {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "n": self.n,
            "wall_time_s": self.wall_time,
            "throughput": self.throughput,
            "first_call_s": self.first_call,
            "warmup_calls": int(len(self.warmup_samples)),
            "stop_reason": self.stop_reason,
            "stats": dict(self.stats),
        }
        if keep_samples:
            out["samples_s"] = [float(s) for s in self.samples]
            out["warmup_samples_s"] = [float(s) for s in self.warmup_samples]
        return out


def _call_fn(model: Any, batch: np.ndarray, mode: str):
    if mode == "compute":
        x = model.to_device(batch)
        forward, sync = model.forward, model.sync

        def call() -> None:
            sync(forward(x))

        return call
    to_device, forward, sync, to_numpy = model.to_device, model.forward, model.sync, model.to_numpy

    def call_e2e() -> None:
        y = forward(to_device(batch))
        sync(y)
        to_numpy(y)

    return call_e2e


def time_model(
    model: Any,
    batch: np.ndarray,
    mode: str = "compute",
    *,
    stop_rule: StopRule | None = None,
    clock: Any = time.perf_counter_ns,
    **stop_options: Any,
) -> Timing:
    """Time ``model`` on ``batch`` following the timing contract in the module docstring.

    Args:
        model: A :class:`dlbench.backend.Model`.
        batch: Host NumPy input, float32 NCHW (``batch.shape[0]`` is the batch size).
        mode: ``"compute"`` or ``"end_to_end"``.
        stop_rule: A :class:`StopRule`; or pass its fields as keyword arguments.
        clock: A nanosecond clock (tests pass a fake one).

    Returns:
        A :class:`Timing` with the raw samples and their statistics.
    """
    if mode not in MODES:
        raise ConfigError(f"Expected mode in {MODES}. Received: mode={mode!r}")
    if stop_rule is None:
        stop_rule = StopRule.from_dict(stop_options)
    elif stop_options:
        raise ConfigError("Pass either stop_rule or stop-rule keyword options, not both.")
    rule = stop_rule
    batch = np.asarray(batch)
    call = _call_fn(model, batch, mode)

    # Warm-up: until steady, within the warm-up caps.
    warm: list[int] = []
    warm_start = clock()
    while True:
        t0 = clock()
        call()
        warm.append(clock() - t0)
        n = len(warm)
        if n >= rule.warmup_max or (
            n >= rule.warmup_min and clock() - warm_start >= rule.warmup_time * 1e9
        ):
            break
        w = rule.steady_window
        if n >= max(rule.warmup_min, 2 * w) and n >= 2:
            recent = float(np.median(warm[-w:]))
            before = float(np.median(warm[-2 * w : -w]))
            if before > 0 and abs(recent - before) / before <= rule.steady_tolerance:
                break

    # Measurement.
    samples: list[int] = []
    append = samples.append
    min_ns, max_ns = rule.min_time * 1e9, rule.max_time * 1e9
    check_every = 16
    start = clock()
    reason = ""
    while True:
        t0 = clock()
        call()
        t1 = clock()
        append(t1 - t0)
        n = len(samples)
        elapsed = t1 - start
        if n >= rule.max_iters:
            reason = "max_iters"
            break
        if elapsed >= max_ns:
            reason = "max_time"
            break
        if n >= rule.min_iters and elapsed >= min_ns:
            if rule.target_ci is None:
                reason = "min_iters_and_min_time"
                break
            if n % check_every == 0:
                lo, hi = bootstrap_median_ci(np.asarray(samples) * 1e-9, resamples=400)
                med = float(np.median(samples)) * 1e-9
                if med > 0 and (hi - lo) / med <= rule.target_ci:
                    reason = "target_ci"
                    break
    wall = (clock() - start) * 1e-9
    return Timing(
        samples=np.asarray(samples, dtype=np.float64) * 1e-9,
        batch_size=int(batch.shape[0]) if batch.ndim else 1,
        mode=mode,
        wall_time=wall,
        warmup_samples=np.asarray(warm, dtype=np.float64) * 1e-9,
        first_call=warm[0] * 1e-9,
        stop_reason=reason,
    )


def stop_rule_dict(rule: StopRule) -> dict[str, Any]:
    return asdict(rule)
