"""Energy meters read around a measured loop, and the figures derived from them.

Two meters, behind one small interface (:class:`EnergyMeter`):

* :class:`RaplMeter`: CPU package and DRAM energy from the Linux powercap sysfs tree
  (``/sys/class/powercap/intel-rapl:*``; AMD Zen CPUs appear under the same name on kernels
  that support them). Counters are in microjoules and wrap at ``max_energy_range_uj``; a
  wrap between two reads is corrected. RAPL covers the CPU package(s) and DRAM, not the whole
  machine (no disks, fans, PSU losses, GPUs).
* :class:`NvmlMeter`: GPU board energy from NVML's total-energy counter (``nvidia-ml-py``,
  optional, imported on first use). GPUs without the counter (before Volta) fall back to
  integrating power samples taken on a background thread.

Each meter says why it is unavailable (no powercap tree, permission denied -- the usual case
in containers and, since Linux 5.10, for non-root users --, no NVML, no GPU); the record of a
cell then holds ``null`` with that reason, never a made-up number.

Meters are read *around* the measured loop, never inside a timed call::

    monitor = EnergyMonitor.default()              # RAPL + NVML, whichever is readable
    baseline = monitor.idle(2.0)                    # optional: S seconds idle first
    with monitor.measure() as m:                    # reads every meter before and after
        run_the_timed_loop()
    record = energy_record(m.reading, samples=n_calls * batch_size, baseline=baseline,
                           price_per_hour=1.20, carbon_intensity=350)

Training: ``energy_record(reading, samples, steps=n_steps, epochs=n_epochs)`` adds joules per
step and per epoch.

Nothing here imports a framework or ``pynvml`` at import time.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Joules in one kilowatt-hour.
J_PER_KWH = 3.6e6
#: Default powercap root.
POWERCAP_ROOT = "/sys/class/powercap"
#: A counter that did not move over a window at least this long is reported as stalled.
STALL_MIN_S = 0.5

# -- the interface -----------------------------------------------------------------------------


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


# -- RAPL via powercap -------------------------------------------------------------------------


def _permission_reason(path: Path) -> str:
    return (
        f"permission denied reading {path} (since Linux 5.10 RAPL energy counters are readable "
        "by root only; containers usually do not grant access either)"
    )


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


@dataclass
class _Zone:
    name: str  # e.g. "package-0", "package-0/dram"
    path: Path  # the zone folder
    max_range_uj: int | None
    summed: bool
    last_raw: int | None = None
    total_uj: int = 0


class RaplMeter(EnergyMeter):
    """CPU package and DRAM energy from ``<root>/intel-rapl:*`` (Intel, and AMD Zen on recent
    kernels).

    Domains are named after the zone: ``package-0``, ``package-0/dram``, ``package-0/core``.
    Only packages and DRAM are summed (core/uncore lie inside the package; ``psys`` covers the
    package too).

    Args:
        root: The powercap folder (tests point it at a fake tree).
        read_file: How a counter file is read (``path -> int``); tests inject errors here.
    """

    name = "rapl"

    def __init__(
        self,
        root: str | os.PathLike[str] = POWERCAP_ROOT,
        *,
        read_file: Callable[[Path], int] = _read_int,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self._read_file = read_file
        self._zones: list[_Zone] = []
        #: Zones found but left out, with the reason (e.g. no ``energy_uj`` file).
        self.skipped: dict[str, str] = {}

    def _probe(self) -> str | None:
        if not self.root.is_dir():
            return (
                f"no powercap sysfs tree at {self.root} (a kernel without the RAPL powercap "
                "driver, a CPU without RAPL, or a container that does not mount it)"
            )
        tops = sorted(
            (p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1),
            key=lambda p: _zone_index(p.name),
        )
        if not tops:
            return f"no RAPL zones (intel-rapl:*) under {self.root}: the CPU or kernel exposes none"
        candidates: list[_Zone] = []
        for top in tops:
            pname = _zone_name(top)
            candidates.append(self._zone(pname, top, summed=not pname.startswith("psys")))
            # Subzones live inside their package's folder; /sys/class/powercap also lists them
            # flat, next to it (as links), which a copied or fake tree may be limited to.
            subs = [p for p in top.glob(f"{top.name}:*") if p.is_dir()]
            if not subs:
                subs = [p for p in self.root.glob(f"{top.name}:*") if p.is_dir()]
            subs.sort(key=lambda p: _zone_index(p.name))
            for sub in subs:
                sname = _zone_name(sub)
                candidates.append(
                    self._zone(f"{pname}/{sname}", sub, summed=sname.startswith("dram"))
                )
        errors = []
        for z in candidates:
            energy = z.path / "energy_uj"
            if not energy.exists():
                self.skipped[z.name] = f"no energy_uj in {z.path}"
                continue
            try:
                z.last_raw = self._read_file(energy)
            except PermissionError:
                self.skipped[z.name] = _permission_reason(energy)
                errors.append(self.skipped[z.name])
                continue
            except (OSError, ValueError) as e:
                if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
                    self.skipped[z.name] = _permission_reason(energy)
                else:
                    self.skipped[z.name] = f"could not read {energy}: {type(e).__name__}: {e}"
                errors.append(self.skipped[z.name])
                continue
            self._zones.append(z)
        if not self._zones:
            return errors[0] if errors else f"no readable RAPL energy counter under {self.root}"
        return None

    def _zone(self, name: str, path: Path, *, summed: bool) -> _Zone:
        try:
            max_range: int | None = _read_int(path / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = None
        return _Zone(name=name, path=path, max_range_uj=max_range, summed=summed)

    def domains(self) -> list[str]:
        self._ensure_probed()
        return [z.name for z in self._zones]

    def summed_domains(self) -> list[str]:
        self._ensure_probed()
        return [z.name for z in self._zones if z.summed]

    def _read_raw(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for z in self._zones:
            try:
                raw = self._read_file(z.path / "energy_uj")
            except PermissionError:
                self.domain_reasons[z.name] = _permission_reason(z.path / "energy_uj")
                out[z.name] = None
                continue
            except (OSError, ValueError) as e:
                self.domain_reasons[z.name] = f"could not read: {type(e).__name__}: {e}"
                out[z.name] = None
                continue
            step = unwrap_delta(z.last_raw, raw, z.max_range_uj)
            if step is None:
                self.domain_reasons[z.name] = (
                    f"counter went backwards ({z.last_raw} -> {raw} µJ) and its "
                    "max_energy_range_uj is unknown: cannot correct the wrap"
                )
                out[z.name] = None
                z.last_raw = raw
                continue
            z.total_uj += step
            z.last_raw = raw
            out[z.name] = z.total_uj * 1e-6
        return out


def unwrap_delta(before: int | None, after: int, max_range: int | None) -> int | None:
    """Increase of a counter that wraps to 0 after ``max_range`` (at most one wrap between the two
    reads). ``None`` when it went backwards and ``max_range`` is unknown."""
    if before is None:
        return 0
    if after >= before:
        return after - before
    if max_range is None or max_range <= 0:
        return None
    return max_range - before + after


def _zone_index(folder: str) -> tuple[int, ...]:
    return tuple(int(p) for p in folder.split(":")[1:] if p.isdigit())


def _zone_name(path: Path) -> str:
    try:
        name = (path / "name").read_text().strip()
    except OSError:
        name = ""
    return name or path.name


# -- NVML ----------------------------------------------------------------------------------------


class NvmlMeter(EnergyMeter):
    """GPU board energy from NVML (``nvidia-ml-py``; imported on first use).

    Uses ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded; Volta and
    newer). A GPU without it falls back to ``nvmlDeviceGetPowerUsage`` samples integrated
    (trapezoids) on a background thread every ``sample_interval_s``; that thread starts on the
    first :meth:`read` and ends at :meth:`close`.

    Args:
        indices: NVML device indices to read. Default: the GPUs named by
            ``CUDA_VISIBLE_DEVICES`` when it is set (indices, taken in NVML's PCI order, or
            ``GPU-...`` UUIDs, matched exactly), else every GPU. Pass the index of the cell's
            device so idle GPUs do not add their energy.
        sample_interval_s: Power sampling period of the fallback.
    """

    name = "nvml"

    def __init__(
        self, indices: Sequence[int] | None = None, *, sample_interval_s: float = 0.05
    ) -> None:
        super().__init__()
        self.indices = None if indices is None else list(indices)
        self.sample_interval_s = sample_interval_s
        self._nvml: Any = None
        self._handles: dict[str, Any] = {}
        self._methods: dict[str, str] = {}
        self._sampler: _PowerSampler | None = None

    def _probe(self) -> str | None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return "nvidia-ml-py is not installed (pip install nvidia-ml-py): GPU energy not read"
        try:
            pynvml.nvmlInit()
        except Exception as e:
            return f"NVML could not start ({_nvml_error(e)}): no NVIDIA driver or GPU visible"
        self._nvml = pynvml
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as e:
            return f"NVML could not count GPUs: {_nvml_error(e)}"
        indices = self.indices
        if indices is None:
            indices = visible_gpu_indices(
                os.environ.get("CUDA_VISIBLE_DEVICES"), count, lambda i: _nvml_uuid(pynvml, i)
            )
        if count == 0 or not indices:
            return "no NVIDIA GPU visible to NVML"
        errors = []
        for i in indices:
            name = f"gpu{i}"
            try:
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
            except Exception as e:
                errors.append(f"{name}: {_nvml_error(e)}")
                continue
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                self._methods[name] = "counter"
            except Exception:
                try:
                    pynvml.nvmlDeviceGetPowerUsage(h)
                    self._methods[name] = "power-sampling"
                except Exception as e:
                    errors.append(f"{name}: neither energy counter nor power reading: {e}")
                    continue
            self._handles[name] = h
        if not self._handles:
            return "no GPU energy reading through NVML: " + "; ".join(errors)
        return None

    def domains(self) -> list[str]:
        self._ensure_probed()
        return list(self._handles)

    def method(self, domain: str) -> str:
        self._ensure_probed()
        return self._methods.get(domain, "counter")

    def _read_raw(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        sampled = {n: h for n, h in self._handles.items() if self._methods[n] == "power-sampling"}
        if sampled and self._sampler is None:
            self._sampler = _PowerSampler(
                {n: self._power_reader(h) for n, h in sampled.items()}, self.sample_interval_s
            )
            self._sampler.start()
        for name, h in self._handles.items():
            if name in sampled:
                assert self._sampler is not None
                out[name] = self._sampler.joules(name)
                if out[name] is None:
                    self.domain_reasons[name] = self._sampler.errors.get(name, "no power sample")
                continue
            try:
                out[name] = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) * 1e-3
            except Exception as e:
                self.domain_reasons[name] = f"energy counter read failed: {_nvml_error(e)}"
                out[name] = None
        return out

    def _power_reader(self, handle: Any) -> Callable[[], float]:
        return lambda: float(self._nvml.nvmlDeviceGetPowerUsage(handle)) * 1e-3  # mW -> W

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
            self._handles = {}
            self._probed = False  # a later use probes (and initialises NVML) again


def _nvml_uuid(pynvml: Any, index: int) -> str:
    uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
    return uuid.decode() if isinstance(uuid, bytes) else str(uuid)


def visible_gpu_indices(
    visible: str | None, count: int, uuid_of: Callable[[int], str] | None = None
) -> list[int]:
    """NVML indices of the GPUs that ``CUDA_VISIBLE_DEVICES`` (``visible``) names.

    ``None`` or unparsable (MIG instances included: NVML reads energy per board): every GPU.
    Integers are taken as NVML indices (exact when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``);
    ``GPU-...`` UUIDs (or their prefixes) are matched. An empty value hides every GPU.
    """
    if visible is None:
        return list(range(count))
    items = [v.strip() for v in visible.split(",") if v.strip()]
    out: list[int] = []
    for item in items:
        if item.lstrip("-").isdigit():
            i = int(item)
            if i < 0:
                break  # CUDA ignores everything from the first invalid entry
            if i < count and i not in out:
                out.append(i)
        elif item.startswith("GPU-") and uuid_of is not None:
            for i in range(count):
                with contextlib.suppress(Exception):
                    if uuid_of(i).startswith(item) and i not in out:
                        out.append(i)
                        break
        else:
            return list(range(count))
    return out


def _nvml_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


class _PowerSampler:
    """Integrates watts sampled every ``interval`` seconds into joules (trapezoids)."""

    def __init__(
        self,
        readers: dict[str, Callable[[], float]],
        interval: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.readers, self.interval, self.clock = readers, interval, clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, float]] = {}
        self._joules: dict[str, float] = dict.fromkeys(readers, 0.0)
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dlbench-power", daemon=True)
        self.sample()

    def sample(self) -> None:
        for name, read in self.readers.items():
            try:
                w = read()
            except Exception as e:
                self.errors[name] = f"power read failed: {type(e).__name__}: {e}"
                continue
            t = self.clock()
            with self._lock:
                if name in self._last:
                    t0, w0 = self._last[name]
                    self._joules[name] += 0.5 * (w0 + w) * (t - t0)
                self._last[name] = (t, w)

    def joules(self, name: str) -> float | None:
        self.sample()
        with self._lock:
            return self._joules[name] if name in self._last else None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


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


# -- derived figures (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """Idle power, measured before the cell (``--energy-baseline S``)."""

    watts: float | None
    seconds: float
    reason: str | None = None

    @classmethod
    def from_reading(cls, reading: EnergyReading) -> Baseline:
        return cls(watts=reading.watts, seconds=reading.seconds, reason=reading.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"watts": self.watts, "seconds": self.seconds, "reason": self.reason}


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def average_watts(joules: float | None, seconds: float | None) -> float | None:
    """``joules / seconds`` (``None`` without energy or for an empty window)."""
    if not _num(joules) or not _num(seconds) or seconds <= 0:  # type: ignore[operator]
        return None
    return joules / seconds  # type: ignore[operator]


def net_joules(joules: float | None, seconds: float, baseline_watts: float | None) -> float | None:
    """Energy above idle: ``joules - baseline_watts * seconds``. Not clamped: a negative value
    says the load is within the idle noise."""
    if not _num(joules) or not _num(baseline_watts) or not _num(seconds):
        return None
    return joules - baseline_watts * seconds  # type: ignore[operator]


def joules_per_sample(joules: float | None, samples: int | float) -> float | None:
    """Energy per sample (``None`` without energy or samples)."""
    if not _num(joules) or not _num(samples) or samples <= 0:
        return None
    return joules / samples  # type: ignore[operator]


def per_unit(joules: float | None, units: int | float | None) -> float | None:
    """Joules per step, per epoch... (``None`` when either is missing or ``units <= 0``)."""
    if units is None:
        return None
    return joules_per_sample(joules, units)


def joules_per_step(joules: float | None, steps: int | None) -> float | None:
    """Training: energy per optimizer step."""
    return per_unit(joules, steps)


def joules_per_epoch(joules: float | None, epochs: int | float | None) -> float | None:
    """Training: energy per epoch (``epochs`` may be fractional for a partial epoch)."""
    return per_unit(joules, epochs)


def cost_per_million_samples(
    price_per_hour: float | None, throughput: float | None
) -> float | None:
    """Cost (in the price's currency) of one million samples on a machine rented at
    ``price_per_hour``, at ``throughput`` samples per second."""
    if not _num(price_per_hour) or not _num(throughput) or throughput <= 0 or price_per_hour < 0:  # type: ignore[operator]
        return None
    return price_per_hour / 3600.0 / throughput * 1e6  # type: ignore[operator]


def co2_per_million_samples(
    joules_per_sample: float | None, carbon_intensity_g_per_kwh: float | None
) -> float | None:
    """Grams of CO2(eq) for one million samples: energy in kWh times the grid's intensity."""
    if not _num(joules_per_sample) or not _num(carbon_intensity_g_per_kwh):
        return None
    if carbon_intensity_g_per_kwh < 0:  # type: ignore[operator]
        return None
    return joules_per_sample * 1e6 / J_PER_KWH * carbon_intensity_g_per_kwh  # type: ignore[operator]


def energy_record(
    reading: EnergyReading | None,
    samples: int,
    *,
    baseline: Baseline | None = None,
    price_per_hour: float | None = None,
    carbon_intensity: float | None = None,
    throughput: float | None = None,
    steps: int | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """The ``energy`` record of one cell (``schema/energy-v1.json``).

    Args:
        reading: The window around the measured loop (``None``: energy was not measured).
        samples: Samples processed in that window (calls x batch size; training: steps x batch).
        baseline: Idle power measured before (its energy over the window is subtracted).
        price_per_hour: Machine price (USD per hour): gives ``cost.usd_per_million_samples``.
        carbon_intensity: Grid intensity (gCO2/kWh): gives ``co2.g_per_million_samples``.
        throughput: Samples per second for the cost (default ``samples / reading.seconds``).
        steps, epochs: Training: adds ``joules_per_step`` / ``joules_per_epoch``.

    Every figure that cannot be computed is ``null``, with the reason in ``reason`` (energy) or
    in the ``cost`` / ``co2`` entry.
    """
    notes: list[str] = []
    seconds = reading.seconds if reading is not None else None
    gross = reading.total_joules if reading is not None else None
    reason = "energy not measured" if reading is None else reading.reason
    net = None
    base_rec = None
    if baseline is not None:
        base_rec = baseline.to_dict()
        if gross is not None and baseline.watts is None:
            notes.append(f"idle baseline unavailable ({baseline.reason}): energy is gross")
        elif gross is not None:
            net = net_joules(gross, seconds, baseline.watts)  # type: ignore[arg-type]
    used = net if net is not None else gross
    if net is not None and net <= 0:
        used = None
        reason = (
            f"net energy {net:.3g} J is not above the idle baseline: the load is within the "
            "idle noise (no energy per sample)"
        )
        notes.append(reason)
    jps = joules_per_sample(used, samples)
    if throughput is None and seconds:
        throughput = samples / seconds if samples else None
    domains = {}
    if reading is not None:
        for d, j in reading.joules.items():
            domains[d] = {
                "joules": j,
                "watts": average_watts(j, reading.seconds),
                "summed": d in reading.summed,
                "method": reading.methods.get(d, "counter"),
                "reason": reading.domain_reasons.get(d),
            }
    rec: dict[str, Any] = {
        "available": gross is not None,
        "reason": None if used is not None else reason,
        "seconds": seconds,
        "samples": int(samples),
        "joules": gross,
        "watts": average_watts(gross, seconds),
        "net": net is not None,
        "net_joules": net,
        "joules_per_sample": jps,
        "domains": domains,
        "meters": dict(reading.meters) if reading is not None else {},
        "baseline": base_rec,
        "cost": None,
        "co2": None,
        "notes": notes,
    }
    if steps is not None:
        rec["steps"] = int(steps)
        rec["joules_per_step"] = joules_per_step(used, steps)
    if epochs is not None:
        rec["epochs"] = int(epochs)
        rec["joules_per_epoch"] = joules_per_epoch(used, epochs)
    if price_per_hour is not None:
        cost = cost_per_million_samples(price_per_hour, throughput)
        rec["cost"] = {
            "price_per_hour_usd": price_per_hour,
            "throughput": throughput,
            "usd_per_million_samples": cost,
            "reason": None if cost is not None else "no measured throughput",
        }
    if carbon_intensity is not None:
        co2 = co2_per_million_samples(jps, carbon_intensity)
        rec["co2"] = {
            "carbon_intensity_g_per_kwh": carbon_intensity,
            "g_per_million_samples": co2,
            "reason": None if co2 is not None else (reason or "no energy per sample"),
        }
    return rec


__all__ = [
    "Baseline",
    "EnergyMeter",
    "EnergyMonitor",
    "EnergyReading",
    "NvmlMeter",
    "RaplMeter",
    "average_watts",
    "co2_per_million_samples",
    "cost_per_million_samples",
    "energy_record",
    "joules_per_epoch",
    "joules_per_sample",
    "joules_per_step",
    "net_joules",
    "per_unit",
    "reading_from_counters",
    "schema",
    "unwrap_delta",
    "visible_gpu_indices",
]


def schema() -> dict[str, Any]:
    """The JSON schema of the ``energy`` record (``schema/energy-v1.json``)."""
    import json

    return json.loads((Path(__file__).parent / "schema" / "energy-v1.json").read_text())
