"""The ``server`` scenario: Poisson arrivals at a target rate, p99 latency under load.

Queries (batch 1) arrive at exponentially distributed intervals (a Poisson process, seeded). One
model serves them first come, first served: query ``i`` starts at its arrival time or when query
``i - 1`` finishes, whichever is later, and its latency runs from its *arrival* to the end of its
call, so queueing delay counts, as it does for a real service. Each call follows the timing
contract of :func:`dlbench.execution.measure.timed_calls` (``compute`` or ``end_to_end``).

With a p99 bound, a search finds the highest rate whose p99 latency stays under it: a bracket from
half the measured capacity (1 / median service time), then bisection on the rate.

Without ``server_rate``, a **common sweep** drives the model at the offered rates of one fixed
grid (1, 2, 5 per decade: ..., 20, 50, 100, 200, ... queries/s), from :data:`SWEEP_START` up
until a rate overloads it (down from there when the first one already does), so every backend
of a run is measured at the same offered loads and their p99s compare like with like (the
report plots p99 against offered load; the summary reads the highest rate every backend
sustained).

The scheduler takes its clock and its wait function as arguments, so tests drive it with a fake
clock: :func:`serve` is the whole schedule, :func:`search_max_rate` the whole search.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.measure import Clock, StopRule, Timing, time_model, timed_calls
from dlbench.execution.scenarios._common import timed_batch, validity

#: At least this many queries per server run (p99 needs a tail to estimate).
SERVER_MIN_QUERIES = 256
#: A search trial: at least this many queries...
SEARCH_MIN_QUERIES = 128
#: ...and at least this many seconds...
SEARCH_TRIAL_TIME = 0.25
#: ...but no more than this many seconds (fewer queries for a slow model), and at least:
SEARCH_TRIAL_MAX_TIME = 2.0
SEARCH_TRIAL_MIN_QUERIES = 32
#: The search gives up below this fraction of the measured capacity.
SEARCH_MIN_FRACTION = 1 / 64
#: The common sweep's first offered rate (queries/s) and how long each of its points lasts.
SWEEP_START = 20.0
SWEEP_POINT_MIN_QUERIES = 128
SWEEP_POINT_TIME = 0.25
SWEEP_POINT_MAX_TIME = 1.0
#: The sweep never goes beyond this multiple of the measured capacity, nor below 1 query/s.
SWEEP_MAX_LOAD = 2.0
SWEEP_MIN_RATE = 1.0
#: A run is overloaded (INVALID) when completions per second fall below this share of arrivals
#: per second: the queue grew for the whole run, and the latencies measure its growth.
MIN_RATE_RATIO = 0.9


def poisson_arrivals(rate: float, n: int, seed: int = 0) -> np.ndarray:
    """Arrival times (ns, int64) of ``n`` queries of a Poisson process at ``rate`` per second,
    the first at 0."""
    if not rate > 0:
        raise ConfigError(f"Expected a positive arrival rate. Received: rate={rate!r}")
    gaps = np.random.default_rng(seed).exponential(1e9 / rate, size=max(0, n - 1))
    return np.concatenate([[0.0], np.cumsum(gaps)]).astype(np.int64)


def spin_until(clock: Clock) -> Callable[[int], None]:
    """A wait function: sleep while the target is more than 2 ms away, then spin on ``clock``
    (sleep alone oversleeps by tens of microseconds, which would count as latency)."""

    def wait(due_ns: int) -> None:
        remaining = due_ns - clock()
        if remaining > 5_000_000:
            time.sleep((remaining - 2_000_000) * 1e-9)
        while clock() < due_ns:
            pass

    return wait


@dataclass
class ServeResult:
    """One server run. Times in ns relative to the first arrival."""

    arrivals_ns: np.ndarray  # of the queries issued (served or not)
    finishes_ns: np.ndarray  # of the queries served, in order
    service_ns: np.ndarray  # time inside each call

    @property
    def issued(self) -> int:
        return int(len(self.arrivals_ns))

    @property
    def served(self) -> int:
        return int(len(self.finishes_ns))

    @property
    def latencies_s(self) -> np.ndarray:
        return (self.finishes_ns - self.arrivals_ns[: self.served]) * 1e-9

    @property
    def duration_s(self) -> float:
        """From the first arrival to the last completion."""
        return float(self.finishes_ns[-1]) * 1e-9 if self.served else 0.0

    @property
    def scheduled_rate(self) -> float:
        """Arrivals per second actually drawn (the Poisson process's realised rate)."""
        a = self.arrivals_ns[: self.served]
        return (len(a) - 1) / ((a[-1] - a[0]) * 1e-9) if len(a) > 1 and a[-1] > a[0] else math.nan

    @property
    def achieved_rate(self) -> float:
        """Completions per second."""
        f = self.finishes_ns
        return (len(f) - 1) / ((f[-1] - f[0]) * 1e-9) if len(f) > 1 and f[-1] > f[0] else math.nan

    def p99(self) -> float:
        """p99 latency (s); ``inf`` when a query was left unserved (the run hit its cap)."""
        if self.served < self.issued or not self.served:
            return math.inf
        return float(np.percentile(self.latencies_s, 99))


def serve(
    calls: Iterator[tuple[int, int]],
    arrivals_ns: np.ndarray,
    *,
    clock: Clock,
    wait: Callable[[int], None],
    max_time: float | None = None,
) -> ServeResult:
    """Serve queries arriving at ``arrivals_ns`` (relative), one at a time, first come first served.

    Args:
        calls: :func:`dlbench.execution.measure.timed_calls` (each ``next`` runs one query and returns its
            ``(t0, t1)``).
        arrivals_ns: Arrival times relative to the start, ascending.
        clock: The nanosecond clock ``calls`` uses.
        wait: ``wait(t)`` returns once ``clock() >= t``.
        max_time: Stop issuing queries once this many seconds have passed; the rest are unserved.
    """
    origin = clock()
    cap = None if max_time is None else origin + int(max_time * 1e9)
    finishes, service = [], []
    for a in arrivals_ns:
        due = origin + int(a)
        if clock() < due:
            wait(due)
        t0, t1 = next(calls)
        finishes.append(t1 - origin)
        service.append(t1 - t0)
        if cap is not None and t1 >= cap:
            break
    return ServeResult(
        arrivals_ns=np.asarray(arrivals_ns, dtype=np.int64),
        finishes_ns=np.asarray(finishes, dtype=np.int64),
        service_ns=np.asarray(service, dtype=np.int64),
    )


def search_max_rate(
    p99_at: Callable[[float], float],
    bound: float,
    start: float,
    *,
    rel_tol: float = 0.05,
    max_trials: int = 16,
    min_rate: float = 0.0,
    out_of_time: Callable[[], bool] | None = None,
) -> tuple[float | None, list[dict[str, Any]]]:
    """The highest rate whose p99 latency (``p99_at(rate)``, seconds) is within ``bound``.

    Brackets from ``start`` (up by x1.5 while it passes, down by /2 while it fails, not below
    ``min_rate``), then bisects (geometric mean) until the bracket is within ``rel_tol``, or
    ``max_trials`` are spent, or ``out_of_time()`` says the time budget is.

    Returns:
        ``(best_rate or None if even the lowest tried failed, trials)`` where each trial is
        ``{"rate", "p99_s", "ok"}``.
    """
    trials: list[dict[str, Any]] = []

    def ok(rate: float) -> bool:
        p99 = float(p99_at(rate))
        good = p99 <= bound
        trials.append({"rate": rate, "p99_s": p99 if math.isfinite(p99) else None, "ok": good})
        return good

    def more() -> bool:
        return len(trials) < max_trials and not (out_of_time and out_of_time())

    lo: float | None = None
    hi: float | None = None
    if ok(start):
        lo = start
        while more():
            r = lo * 1.5
            if ok(r):
                lo = r
            else:
                hi = r
                break
    else:
        hi = start
        while more() and hi / 2 >= min_rate:
            r = hi / 2
            if ok(r):
                lo = r
                break
            hi = r
    if lo is None:
        return None, trials
    while hi is not None and hi / lo > 1 + rel_tol and more():
        mid = math.sqrt(lo * hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, trials


def grid_rate(k: int) -> float:
    """The ``k``-th rate of the sweep grid: 1, 2, 5, 10, 20, 50, ... (``k`` may be negative)."""
    return (1.0, 2.0, 5.0)[k % 3] * 10.0 ** (k // 3)


def grid_index(rate: float) -> int:
    """The index of the largest grid rate at or below ``rate``."""
    k = 3 * math.floor(math.log10(rate))
    while grid_rate(k + 1) <= rate * (1 + 1e-9):
        k += 1
    while grid_rate(k) > rate * (1 + 1e-9):
        k -= 1
    return k


def sweep_point(rate: float, result: ServeResult) -> dict[str, Any]:
    """One point of the common sweep: offered, scheduled and achieved rates, p50/p99 (queueing
    included) with the p99's 95% interval, and whether the model kept up (``ok``)."""
    from dlbench.analysis.stats import NOISY_IQR_RATIO, quantile_ci

    lat = np.sort(result.latencies_s)
    sched, achieved = result.scheduled_rate, result.achieved_rate
    ok = (
        result.served == result.issued
        and result.served > 1
        and math.isfinite(sched)
        and math.isfinite(achieved)
        and achieved >= MIN_RATE_RATIO * sched
    )
    point: dict[str, Any] = {
        "offered_rate": rate,
        "scheduled_rate": sched if math.isfinite(sched) else None,
        "achieved_rate": achieved if math.isfinite(achieved) else None,
        "queries": result.issued,
        "served": result.served,
        "p50_s": None,
        "p99_s": None,
        "p50_ci95": None,
        "p99_ci95": None,
        "noisy": None,
        "ok": bool(ok),
    }
    if len(lat):
        q1, med, q3 = np.percentile(lat, [25, 50, 75])
        lo, hi = quantile_ci(lat, 0.99)
        point.update(
            p50_s=float(med),
            p99_s=float(np.percentile(lat, 99)),
            p50_ci95=list(quantile_ci(lat, 0.5)),
            p99_ci95=[lo, hi],
            noisy=bool(med > 0 and (q3 - q1) / med > NOISY_IQR_RATIO),
        )
    return point


def common_sweep(
    run_at: Callable[[float], ServeResult],
    capacity: float,
    *,
    out_of_time: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Drive the model at the grid's offered rates, the same for every backend.

    Up from :data:`SWEEP_START` until a point overloads the model (or the rate passes
    :data:`SWEEP_MAX_LOAD` times the capacity); when the first point already overloads it, down
    the grid until one does not (not below :data:`SWEEP_MIN_RATE`). ``out_of_time()`` ends it
    early. Returns ``(points, why_it_stopped)``: the points (:func:`sweep_point`) by increasing
    rate, and ``"overloaded"``, ``"max load"`` or ``"time budget"``.
    """
    points: list[dict[str, Any]] = []
    stopped = "time budget"

    def more() -> bool:
        return not (out_of_time and out_of_time())

    start = grid_index(SWEEP_START)
    k = start
    while more():
        rate = grid_rate(k)
        if rate > SWEEP_MAX_LOAD * capacity and points:
            stopped = "max load"
            break
        points.append(sweep_point(rate, run_at(rate)))
        if not points[-1]["ok"]:
            stopped = "overloaded"
            break
        k += 1
    if points and not points[0]["ok"]:
        k = start - 1
        while more() and grid_rate(k) >= SWEEP_MIN_RATE:
            points.append(sweep_point(grid_rate(k), run_at(grid_rate(k))))
            if points[-1]["ok"]:
                break
            k -= 1
    return sorted(points, key=lambda p: p["offered_rate"]), stopped


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"Expected `{name}` to be a positive number. Received: {name}={value!r}")
    return float(value)


def server(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int = 1,
    timing_mode: str = "compute",
    stop_rule: StopRule | None = None,
    seed: int = 0,
    server_rate: float | None = None,
    server_p99_bound: float | None = None,
    server_search: bool | None = None,
    server_min_queries: int = SERVER_MIN_QUERIES,
    clock: Clock | None = None,
    wait: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Poisson arrivals at a target rate: p99 latency under load and the rate achieved.

    Args:
        server_rate: Target arrivals per second. Default: the search's answer when a bound is
            given, else half the measured capacity.
        server_p99_bound: p99 latency bound in seconds: the run is INVALID above it, and it
            enables the search for the highest rate under it.
        server_search: Force the rate search on or off (default: on when a bound is given).
        server_min_queries: Queries in the run, at least (and at least ``min_time`` seconds of
            arrivals).

    Validity: at least ``server_min_queries`` queries served and ``min_time`` seconds of
    arrivals, all of them served before the ``max_time`` cap, completions per second at least
    90% of arrivals per second (not overloaded), and p99 within the bound when one is given.
    """
    if batch_size != 1:
        raise ConfigError(f"Expected batch_size=1 for the server scenario. Received: {batch_size}")
    rate = _positive("server_rate", server_rate)
    bound = _positive("server_p99_bound", server_p99_bound)
    if server_search and bound is None:
        raise ConfigError("Expected `server_p99_bound` for the rate search. Received: None")
    do_search = bound is not None if server_search is None else bool(server_search)
    rule = stop_rule or StopRule()
    clock = clock or time.perf_counter_ns
    wait = wait or spin_until(clock)
    batch = timed_batch(dataset, 1, seed)

    # Warm-up and the service time (the capacity estimate), with the same call and contract.
    probe_rule = replace(
        rule, min_iters=min(rule.min_iters, 20), min_time=min(rule.min_time, 0.2), target_ci=None
    )
    probe = time_model(model, batch, timing_mode, stop_rule=probe_rule, clock=clock)
    capacity = 1.0 / probe.median if probe.median > 0 else 1e6
    calls = timed_calls(model, batch, timing_mode, clock)
    next(calls)  # the input is prepared outside the schedule

    def run(
        r: float, min_queries: int, min_time: float, run_seed: int, max_time: float | None = None
    ) -> ServeResult:
        n = max(min_queries, math.ceil(r * min_time) + 1)
        if max_time is not None:  # a search trial: fewer queries rather than a long trial
            n = max(SEARCH_TRIAL_MIN_QUERIES, min(n, math.ceil(r * max_time) + 1))
        arrivals = poisson_arrivals(r, n, seed=run_seed)
        while arrivals[-1] < min_time * 1e9:  # an unlucky draw: extend it
            n = math.ceil(n * 1.25) + 1
            arrivals = poisson_arrivals(r, n, seed=run_seed)
        return serve(calls, arrivals, clock=clock, wait=wait, max_time=rule.max_time)

    search = None
    if do_search:
        assert bound is not None
        trial_time = max(SEARCH_TRIAL_TIME, rule.min_time / 4)
        trial_max = max(trial_time, SEARCH_TRIAL_MAX_TIME)
        seeds = iter(range(seed + 1, seed + 1000))
        search_end = clock() + int(rule.max_time * 1e9)
        best, trials = search_max_rate(
            lambda r: run(r, SEARCH_MIN_QUERIES, trial_time, next(seeds), trial_max).p99(),
            bound,
            start=capacity / 2,
            min_rate=capacity * SEARCH_MIN_FRACTION,
            out_of_time=lambda: clock() >= search_end,
        )
        search = {"p99_bound_s": bound, "max_rate": best, "trials": trials}
        if rate is None and best is not None:
            rate = best
    sweep, sweep_stopped = None, None
    if server_rate is None:  # the common sweep: the same offered rates for every backend
        sweep_seeds = iter(range(seed + 1000, seed + 2000))
        sweep_end = clock() + int(rule.max_time * 1e9)
        sweep, sweep_stopped = common_sweep(
            lambda r: run(
                r,
                SWEEP_POINT_MIN_QUERIES,
                SWEEP_POINT_TIME,
                next(sweep_seeds),
                SWEEP_POINT_MAX_TIME,
            ),
            capacity,
            out_of_time=lambda: clock() >= sweep_end,
        )
    how = "given" if rate is not None else "half the measured capacity"
    if rate is None:
        rate = capacity / 2
    elif server_rate is None:
        how = "the search's highest rate under the bound"

    result = run(rate, server_min_queries, rule.min_time, seed)
    lat = result.latencies_s
    reasons, notes = [], []
    if result.served < result.issued:
        reasons.append(
            f"only {result.served} of {result.issued} queries were served before the "
            f"{rule.max_time} s cap"
        )
    if result.served < server_min_queries:
        reasons.append(
            f"{result.served} queries served; the rule asks for at least {server_min_queries}"
        )
    arrival_span = float(result.arrivals_ns[-1]) * 1e-9
    if arrival_span < rule.min_time:
        reasons.append(
            f"arrivals spanned {arrival_span:.3f} s; the rule asks for at least {rule.min_time} s"
        )
    sched, achieved = result.scheduled_rate, result.achieved_rate
    if math.isfinite(sched) and math.isfinite(achieved) and achieved < MIN_RATE_RATIO * sched:
        reasons.append(
            f"overloaded: {achieved:.1f} completions/s for {sched:.1f} arrivals/s; the queue grew "
            "for the whole run"
        )
    p99 = float(np.percentile(lat, 99)) if len(lat) else math.nan
    if bound is not None and not p99 <= bound:
        reasons.append(f"p99 latency {p99 * 1e3:.3f} ms exceeds the bound {bound * 1e3:.3f} ms")
    if sweep_stopped == "time budget":
        notes.append(
            f"the common sweep stopped at its time budget ({rule.max_time:g} s, max_time) "
            "before the model was overloaded"
        )
    if do_search and search and search["max_rate"] is None:
        notes.append("no rate tried kept p99 under the bound")
    notes.append(f"rate: {how} ({rate:.1f}/s; capacity ~{capacity:.1f}/s)")

    timing = None
    if len(lat):
        timing = Timing(
            samples=lat,
            batch_size=1,
            mode=timing_mode,
            wall_time=result.duration_s,
            warmup_samples=probe.warmup_samples,
            first_call=probe.first_call,
            stop_reason="all_queries" if result.served == result.issued else "max_time",
            warmup_reason=probe.warmup_reason,
            clock_overhead=probe.clock_overhead,
        )
    return {
        "timing": timing.to_dict() if timing else None,
        "metrics": {},
        "server": {
            "target_rate": rate,
            "rate_source": how,
            "scheduled_rate": sched if math.isfinite(sched) else None,
            "achieved_rate": achieved if math.isfinite(achieved) else None,
            "queries": result.issued,
            "served": result.served,
            "p99_latency_s": p99 if math.isfinite(p99) else None,
            "p99_bound_s": bound,
            "meets_bound": None if bound is None else bool(p99 <= bound),
            "service_time_median_s": float(np.median(result.service_ns)) * 1e-9
            if result.served
            else None,
            "capacity_estimate": capacity,
            "search": search,
            "sweep": sweep,
            "sweep_stopped": sweep_stopped,
            # the highest sustained rate, when the sweep went as far as the model could
            "max_sustained_rate": max(
                (p["offered_rate"] for p in sweep or [] if p["ok"]), default=None
            )
            if sweep_stopped in ("overloaded", "max load")
            else None,
        },
        "validity": validity(
            reasons,
            notes,
            min_queries=server_min_queries,
            min_time_s=rule.min_time,
            max_time_s=rule.max_time,
            min_rate_ratio=MIN_RATE_RATIO,
            p99_bound_s=bound,
        ),
    }
