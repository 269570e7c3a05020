"""Every readable meter read together around a measured window (:class:`EnergyMonitor`)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: Joules in one kilowatt-hour.
from dlbench.execution.energy.figures import Baseline
from dlbench.execution.energy.meter import (
    POWERCAP_ROOT,
    EnergyMeter,
    EnergyReading,
    reading_from_counters,
)
from dlbench.execution.energy.nvml import NvmlMeter
from dlbench.execution.energy.rapl import RaplMeter

# -- the monitor ---------------------------------------------------------------------------------


class _Measurement:
    """What :meth:`EnergyMonitor.measure` yields; ``reading`` is set when the block ends."""

    reading: EnergyReading | None = None


class EnergyMonitor:
    """Reads several meters together around a window.

    Args:
        meters: The meters (default none: every reading says so).
        poll_s: Also read every meter this often on a background thread, so a RAPL counter
            that wraps more than once in a long window is still corrected. ``None`` (default):
            read only at start and stop, which corrects one wrap (a package counter wraps after
            roughly 262 kJ, i.e. minutes at full load).
        clock: Time source (tests).

    Example:
        >>> mon = EnergyMonitor.default()
        >>> with mon.measure() as m:  # doctest: +SKIP
        ...     loop()
        >>> m.reading.total_joules  # doctest: +SKIP
    """

    def __init__(
        self,
        meters: Sequence[EnergyMeter] = (),
        *,
        poll_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.meters = list(meters)
        self.poll_s = poll_s
        self.clock = clock
        self._start: tuple[float, dict[str, float | None]] | None = None
        self._lap: tuple[float, dict[str, float | None]] | None = None
        self._poller: threading.Thread | None = None
        self._stop_poll = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def default(
        cls,
        *,
        rapl_root: str | os.PathLike[str] = POWERCAP_ROOT,
        gpu_indices: Sequence[int] | None = None,
        gpu: bool = True,
        poll_s: float | None = None,
    ) -> EnergyMonitor:
        """RAPL and (when ``gpu``) NVML; meters that are unavailable stay in the list so each
        reading says why."""
        meters: list[EnergyMeter] = [RaplMeter(rapl_root)]
        if gpu:
            meters.append(NvmlMeter(gpu_indices))
        return cls(meters, poll_s=poll_s)

    def available(self) -> bool:
        return any(m.available() for m in self.meters)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Meter name -> ``{"available", "reason", "domains"}``."""
        return {m.name: m.describe() for m in self.meters}

    def _snapshot(self) -> tuple[dict[str, float | None], dict[str, str]]:
        values: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        with self._lock:
            for m in self.meters:
                if not m.available():
                    continue
                for d, v in m.read().items():
                    values[f"{m.name}:{d}"] = v
                for d, r in m.domain_reasons.items():
                    reasons[f"{m.name}:{d}"] = r
        return values, reasons

    def start(self) -> None:
        """Read every meter: the start of a window."""
        values, _ = self._snapshot()
        self._start = self._lap = (self.clock(), values)
        if self.poll_s:
            self._stop_poll.clear()
            self._poller = threading.Thread(target=self._poll, name="dlbench-energy", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        assert self.poll_s
        while not self._stop_poll.wait(self.poll_s):
            self._snapshot()

    def lap(self) -> EnergyReading:
        """The reading since :meth:`start` or the previous lap, keeping the window open (one
        window over a training run, one lap per epoch)."""
        if self._start is None or self._lap is None:
            raise RuntimeError("Expected EnergyMonitor.start() before lap(). Received lap()")
        values, reasons = self._snapshot()
        t1 = self.clock()
        t0, before = self._lap
        self._lap = (t1, values)
        return self._reading(before, values, t1 - t0, reasons)

    def stop(self) -> EnergyReading:
        """Read every meter again and return the window's :class:`EnergyReading` (since
        :meth:`start`, laps included)."""
        if self._start is None:
            raise RuntimeError("Expected EnergyMonitor.start() before stop(). Received stop()")
        if self._poller is not None:
            self._stop_poll.set()
            self._poller.join(timeout=5)
            self._poller = None
        values, reasons = self._snapshot()
        t1 = self.clock()
        t0, before = self._start
        self._start = self._lap = None
        return self._reading(before, values, t1 - t0, reasons)

    def _reading(
        self,
        before: dict[str, float | None],
        values: dict[str, float | None],
        seconds: float,
        reasons: dict[str, str],
    ) -> EnergyReading:
        summed: list[str] = []
        methods: dict[str, str] = {}
        for m in self.meters:
            if m.available():
                summed += [f"{m.name}:{d}" for d in m.summed_domains()]
                methods.update({f"{m.name}:{d}": m.method(d) for d in m.domains()})
        return reading_from_counters(
            before,
            values,
            seconds,
            meters=self.describe(),
            summed=summed,
            reasons=reasons,
            methods=methods,
        )

    @contextlib.contextmanager
    def measure(self) -> Iterator[_Measurement]:
        """``with monitor.measure() as m: ...`` then ``m.reading``."""
        box = _Measurement()
        self.start()
        try:
            yield box
        finally:
            box.reading = self.stop()

    def idle(self, seconds: float, *, sleep: Callable[[float], None] = time.sleep) -> Baseline:
        """Measure ``seconds`` of idling: the baseline that :func:`energy_record` subtracts."""
        with self.measure() as m:
            sleep(seconds)
        assert m.reading is not None
        return Baseline.from_reading(m.reading)

    def close(self) -> None:
        for m in self.meters:
            m.close()
