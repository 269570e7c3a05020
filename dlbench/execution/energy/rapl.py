"""CPU package and DRAM energy from the Linux powercap (RAPL) sysfs tree."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Joules in one kilowatt-hour.
from dlbench.execution.energy.meter import POWERCAP_ROOT, EnergyMeter


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
