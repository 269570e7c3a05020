"""The worker's memory allocator settings, and page faults as a sign that they matter (issue 23).

glibc's ``malloc`` serves blocks of 128 KiB and more with ``mmap`` and gives them back to the
kernel with ``munmap`` when they are freed (its threshold adapts, but only up to 32 MiB, and only
after a block is freed); it also trims the heap top once 128 KiB are free. A framework that frees
each activation after its last use (a ``torch.fx`` graph, an interpreter) then gets fresh pages on
the next call, and every first touch of a page is a minor page fault (issue 23 reports ~14,000
per resnet20 forward at batch 32 in PyTorch, and up to twice the time of a hand-written model).

``allocator = "tuned"`` (the default) starts every worker, whatever its backend, with
:data:`GLIBC_TUNED`: blocks under 32 MiB come from the heap and the heap is trimmed only when a
GiB is free, so freed activations are reused by the next call. ``"system"`` starts the workers
with none of these variables (the C library's defaults). What a worker ran with is recorded in
each backend's settings (:func:`in_force`), and :func:`fault_warnings` flags a backend whose page
faults per call are far above the others'.

Nothing here imports a framework.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from dlbench.errors import ConfigError

ALLOCATORS = ("tuned", "system")
DEFAULT_ALLOCATOR = "tuned"

#: glibc ``mallopt`` tunables read from the environment when a process starts.
GLIBC_TUNED = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(1024 * 1024 * 1024),
}
#: Every variable this module sets or records (``LD_PRELOAD``: a jemalloc/tcmalloc a user chose).
ALLOCATOR_VARS = (*GLIBC_TUNED, "LD_PRELOAD")

#: A backend's faults per call are "far above" the others' when they exceed both this many times
#: the median of the other backends and :data:`FAULTS_FLOOR` per call.
FAULTS_RATIO = 10.0
FAULTS_FLOOR = 100.0


def check(allocator: Any) -> str:
    if allocator not in ALLOCATORS:
        raise ConfigError(
            f"Expected allocator to be one of {list(ALLOCATORS)}. Received: allocator={allocator!r}"
        )
    return allocator


def worker_env(env: Mapping[str, str], allocator: str) -> dict[str, str]:
    """``env`` (a worker's environment) with ``allocator``'s settings: :data:`GLIBC_TUNED` set
    for ``"tuned"``; for ``"system"`` those variables removed (so an inherited value cannot
    tune one run silently). ``LD_PRELOAD`` is left as the user set it (recorded, not changed)."""
    check(allocator)
    out = {k: v for k, v in env.items() if k not in GLIBC_TUNED}
    if allocator == "tuned":
        out.update(GLIBC_TUNED)
    return out


def in_force(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What this process's allocator runs with, for the settings of a result: ``name``
    (``tuned`` when exactly :data:`GLIBC_TUNED` is set, ``system`` when none of it is, else
    ``custom``), the variables set, and the C library."""
    env = os.environ if env is None else env
    found = {k: env[k] for k in ALLOCATOR_VARS if env.get(k)}
    glibc = {k: found.get(k) for k in GLIBC_TUNED}
    if glibc == GLIBC_TUNED:
        name = "tuned"
    elif not any(glibc.values()):
        name = "system"
    else:
        name = "custom"
    if found.get("LD_PRELOAD"):
        name += "+preload"
    lib, version = platform.libc_ver()
    return {"name": name, "env": found, "libc": f"{lib} {version}".strip() or "unknown"}


class FaultCounter:
    """Minor and major page faults of this process between :meth:`start` and :meth:`stop`
    (``getrusage(RUSAGE_SELF)``; all zero where ``resource`` does not exist)."""

    def __init__(self) -> None:
        try:
            import resource
        except ImportError:  # pragma: no cover - not on Unix
            self._read = None
        else:
            self._read = lambda: resource.getrusage(resource.RUSAGE_SELF)
        self._start: tuple[int, int] = (0, 0)

    def _now(self) -> tuple[int, int]:
        if self._read is None:  # pragma: no cover
            return 0, 0
        ru = self._read()
        return int(ru.ru_minflt), int(ru.ru_majflt)

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> tuple[int, int]:
        minor, major = self._now()
        return minor - self._start[0], major - self._start[1]


def faults_dict(minor: int, major: int, calls: int) -> dict[str, Any]:
    """A timing's ``page_faults`` entry: totals over ``calls`` measured calls and per call."""
    calls = max(int(calls), 1)
    return {
        "minor": int(minor),
        "major": int(major),
        "calls": calls,
        "minor_per_call": minor / calls,
        "major_per_call": major / calls,
    }


def fault_warnings(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """Warnings for backends whose page faults per call, in one (device, scenario, batch size),
    exceed :data:`FAULTS_RATIO` times the median of the other backends' and
    :data:`FAULTS_FLOOR`: the time of such a backend is partly its allocator's, not its
    framework's (see the module docstring)."""
    groups: dict[tuple, dict[str, float]] = {}
    for cell in cells:
        timing = cell.get("timing") or {}
        faults = timing.get("page_faults") if isinstance(timing, Mapping) else None
        if not faults or cell.get("status") not in (None, "ok", "invalid"):
            continue
        per_call = float(faults.get("minor_per_call", 0)) + float(faults.get("major_per_call", 0))
        key = (cell.get("device"), cell.get("scenario"), cell.get("batch_size"))
        groups.setdefault(key, {})[str(cell.get("backend"))] = per_call
    out = []
    for (device, scenario, batch), per_backend in sorted(groups.items(), key=str):
        if len(per_backend) < 2:
            continue
        for backend, value in sorted(per_backend.items()):
            others = sorted(v for b, v in per_backend.items() if b != backend)
            mid = len(others) // 2
            median = others[mid] if len(others) % 2 else (others[mid - 1] + others[mid]) / 2
            if value > FAULTS_FLOOR and value > FAULTS_RATIO * median:
                out.append(
                    f"{backend} takes {value:,.0f} page faults per call in {scenario} at batch "
                    f"{batch} on {device} (the other backends' median: {median:,.0f}): part of "
                    "its time is the kernel mapping memory in again, not computing (glibc maps "
                    "blocks above 32 MiB afresh on every call even when tuned; see each "
                    "backend's settings.allocator)."
                )
    return out
