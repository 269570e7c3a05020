"""The meter interface (:class:`EnergyMeter`) and a reading of it (:class:`EnergyReading`)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Joules in one kilowatt-hour.


J_PER_KWH = 3.6e6
#: Default powercap root.
POWERCAP_ROOT = "/sys/class/powercap"
#: A counter that did not move over a window at least this long is reported as stalled.
STALL_MIN_S = 0.5


class EnergyMeter(ABC):
    """One source of cumulative energy counters (one or more *domains*).

    Subclasses implement :meth:`_probe` (find the domains, or say why there are none) and
    :meth:`_read_raw`; the base class owns the availability state and per-domain reasons.
    """

    #: Short name recorded in results (``rapl``, ``nvml``).
    name: str = "meter"

    def __init__(self) -> None:
        self._probed = False
        self._why: str | None = None
        #: Domain -> why it could not be read at the last :meth:`read`.
        self.domain_reasons: dict[str, str] = {}

    # availability ------------------------------------------------------------------------
    def available(self) -> bool:
        """Whether at least one domain can be read."""
        self._ensure_probed()
        return self._why is None

    @property
    def why_unavailable(self) -> str | None:
        """Why the meter cannot be used (``None`` when it can)."""
        self._ensure_probed()
        return self._why

    def _ensure_probed(self) -> None:
        if not self._probed:
            self._probed = True
            try:
                self._why = self._probe()
            except Exception as e:  # a meter must never break a benchmark
                self._why = f"{self.name} probe failed: {type(e).__name__}: {e}"

    @abstractmethod
    def _probe(self) -> str | None:
        """Find the domains; return why the meter is unusable, or ``None``."""

    @abstractmethod
    def domains(self) -> list[str]:
        """Names of the domains this meter reads (after probing)."""

    def summed_domains(self) -> list[str]:
        """The domains whose energies add up without double counting (default: all)."""
        return self.domains()

    def method(self, domain: str) -> str:
        """How ``domain`` is measured (``counter`` or ``power-sampling``)."""
        return "counter"

    # reading -----------------------------------------------------------------------------
    def read(self) -> dict[str, float | None]:
        """Cumulative joules per domain (``None`` for a domain that could not be read now; its
        reason is in :attr:`domain_reasons`). Raises nothing."""
        if not self.available():
            return {}
        self.domain_reasons = {}
        try:
            return self._read_raw()
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            self.domain_reasons = dict.fromkeys(self.domains(), msg)
            return dict.fromkeys(self.domains())

    @abstractmethod
    def _read_raw(self) -> dict[str, float | None]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the meter holds (threads, library handles)."""

    def describe(self) -> dict[str, Any]:
        """``{"available", "reason", "domains"}`` for the result record."""
        ok = self.available()
        return {
            "available": ok,
            "reason": None if ok else self.why_unavailable,
            "domains": self.domains() if ok else [],
        }


# -- a reading -----------------------------------------------------------------------------------


@dataclass
class EnergyReading:
    """What the meters measured over one window.

    Attributes:
        joules: Domain (``rapl:package-0``, ``nvml:gpu0``...) -> joules; ``None`` when the
            domain could not be measured (reason in ``domain_reasons``).
        total_joules: Sum over the summed domains that were measured (``None`` when none was).
        seconds: Length of the window (``perf_counter``).
        meters: Meter name -> ``{"available", "reason", "domains"}``.
        summed: The domains that make up ``total_joules``.
        methods: Domain -> ``counter`` or ``power-sampling``.
    """

    joules: dict[str, float | None]
    total_joules: float | None
    seconds: float
    meters: dict[str, dict[str, Any]]
    summed: list[str] = field(default_factory=list)
    domain_reasons: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def watts(self) -> float | None:
        """Average power over the window."""
        return average_watts(self.total_joules, self.seconds)

    @property
    def available(self) -> bool:
        return self.total_joules is not None

    @property
    def reason(self) -> str | None:
        """Why there is no energy figure (``None`` when there is one)."""
        if self.available:
            return None
        parts = [f"{n}: {m['reason']}" for n, m in self.meters.items() if m.get("reason")]
        parts += [f"{d}: {r}" for d, r in self.domain_reasons.items()]
        return "; ".join(parts) or "no energy meter configured"

    def to_dict(self) -> dict[str, Any]:
        return {
            "joules": dict(self.joules),
            "total_joules": self.total_joules,
            "seconds": self.seconds,
            "watts": self.watts,
            "meters": {k: dict(v) for k, v in self.meters.items()},
            "summed": list(self.summed),
            "domain_reasons": dict(self.domain_reasons),
            "methods": dict(self.methods),
        }


def combine(readings: list[EnergyReading]) -> EnergyReading | None:
    """One reading for several disjoint windows (e.g. the training steps of every epoch, without
    the evaluations between them): joules and seconds add up; a domain missing from any window
    is missing from the sum, with that window's reason."""
    if not readings:
        return None
    joules: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for r in readings:
        for d, j in r.joules.items():
            if d in joules and joules[d] is None:
                continue
            joules[d] = None if j is None else (joules.get(d) or 0.0) + j
        for d, why in r.domain_reasons.items():
            reasons.setdefault(d, why)
    summed = list(readings[0].summed)
    parts = [joules.get(d) for d in summed]
    total = None if not parts or any(j is None for j in parts) else float(sum(parts))  # type: ignore[arg-type]
    if any(r.total_joules is None for r in readings):
        total = None
    return EnergyReading(
        joules=joules,
        total_joules=total,
        seconds=float(sum(r.seconds for r in readings)),
        meters=readings[0].meters,
        summed=summed,
        domain_reasons=reasons,
        methods=dict(readings[0].methods),
    )


def reading_from_counters(
    before: dict[str, float | None],
    after: dict[str, float | None],
    seconds: float,
    *,
    meters: dict[str, dict[str, Any]] | None = None,
    summed: Sequence[str] | None = None,
    reasons: dict[str, str] | None = None,
    methods: dict[str, str] | None = None,
    stall_min_s: float = STALL_MIN_S,
) -> EnergyReading:
    """A reading from two snapshots of cumulative joules (pure; what :class:`EnergyMonitor` does
    at :meth:`~EnergyMonitor.stop`). A domain that did not advance over a window of at least
    ``stall_min_s`` is reported as a stalled counter (``None``)."""
    reasons = dict(reasons or {})
    joules: dict[str, float | None] = {}
    for name in dict.fromkeys([*before, *after]):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            joules[name] = None
            reasons.setdefault(
                name, "not read at the start" if a is None else "not read at the end"
            )
            continue
        delta = b - a
        if delta < 0:
            joules[name] = None
            reasons.setdefault(name, f"counter went backwards by {-delta:.6g} J")
        elif delta == 0 and seconds >= stall_min_s:
            joules[name] = None
            reasons.setdefault(
                name,
                f"counter did not advance in {seconds:.3g} s (stalled or not updated here)",
            )
        elif delta == 0:
            joules[name] = None
            reasons.setdefault(
                name, f"counter did not advance in {seconds:.3g} s: window shorter than its update"
            )
        else:
            joules[name] = delta
    use = list(joules) if summed is None else [d for d in summed if d in joules]
    measured = [joules[d] for d in use if joules[d] is not None]
    total = float(sum(measured)) if measured else None  # type: ignore[arg-type]
    return EnergyReading(
        joules=joules,
        total_joules=total,
        seconds=float(seconds),
        meters=dict(meters or {}),
        summed=[d for d in use if joules[d] is not None],
        domain_reasons={k: v for k, v in reasons.items() if joules.get(k) is None},
        methods=dict(methods or {}),
    )


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def average_watts(joules: float | None, seconds: float | None) -> float | None:
    """``joules / seconds`` (``None`` without energy or for an empty window)."""
    if not _num(joules) or not _num(seconds) or seconds <= 0:  # type: ignore[operator]
        return None
    return joules / seconds  # type: ignore[operator]
