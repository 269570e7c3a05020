"""What the benchmark ran on: hardware, OS, Python, libraries, GPUs and thread settings.

Framework versions are read from package metadata, so capturing the environment imports no
framework. Used by ``dlbench env`` and stored in every result file.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import dlbench

#: Distribution names to report beyond the backends' own (their manifests' ``distributions``),
#: per key (the first one installed wins).
LIBRARY_DISTS: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "faster-coco-eval": ("faster-coco-eval",),
    "pycocotools": ("pycocotools",),
}

#: Environment variables that change how many threads a library uses, or what it computes,
#: beyond the backends' own (their manifests' ``env_vars``).
GENERIC_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_TF32_OVERRIDE",
)


def _manifests() -> list[Any]:
    from dlbench.registry import backends

    out = []
    for name in backends.names():
        try:
            out.append(backends.manifest(name))
        except Exception:  # a broken plugin must not stop the environment report
            continue
    return sorted(out, key=lambda m: (m.priority, m.name))


def framework_dists() -> dict[str, tuple[str, ...]]:
    """Every distribution to report: each backend's (from its manifest), then the libraries."""
    out: dict[str, tuple[str, ...]] = {}
    for manifest in _manifests():
        out.update(manifest.distributions)
    out.update(LIBRARY_DISTS)
    return out


def thread_env_vars() -> tuple[str, ...]:
    """Every environment variable worth recording: the generic ones and each backend's."""
    names = list(GENERIC_ENV_VARS)
    for manifest in _manifests():
        names.extend(v for v in manifest.env_vars if v not in names)
    return tuple(names)


def package_versions() -> dict[str, str]:
    """Installed versions of the frameworks and key libraries, without importing them."""
    out: dict[str, str] = {}
    for key, dists in framework_dists().items():
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                if dist != key:
                    out[key] += f" ({dist})"
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def cpu_info() -> dict[str, Any]:
    model = platform.processor() or ""
    flags: list[str] = []
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = [
                    f
                    for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "fma")
                    if f in have
                ]
    except OSError:
        pass
    logical = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
    except Exception:  # pragma: no cover - psutil is a core dependency
        physical = logical
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = logical
    return {
        "model": model or platform.machine(),
        "architecture": platform.machine(),
        "logical_cores": logical,
        "physical_cores": physical,
        "usable_cores": affinity,
        "flags": flags,
    }


def memory_info() -> dict[str, Any]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"total_bytes": int(vm.total), "available_bytes": int(vm.available)}
    except Exception:  # pragma: no cover
        return {}


def blas_info() -> dict[str, Any]:
    """numpy's BLAS, as numpy's build configuration reports it."""
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:
        return {}


def gpu_info() -> list[dict[str, Any]]:
    """GPUs as ``nvidia-smi`` reports them; empty when there is none (no framework imported)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=index,name,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(
                {
                    "index": int(parts[0]),
                    "name": parts[1],
                    "memory_total_mib": float(parts[2]),
                    "driver": parts[3],
                }
            )
    return gpus


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the dlbench checkout in use, when it is a git checkout."""
    here = Path(dlbench.__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (subprocess.SubprocessError, OSError):
        return None


def capture() -> dict[str, Any]:
    """The whole environment as a JSON-safe dict."""
    return {
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "platform": platform.platform(),
        },
        "hostname": platform.node(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "cpu": cpu_info(),
        "memory": memory_info(),
        "blas": blas_info(),
        "gpus": gpu_info(),
        "packages": package_versions(),
        "env": {k: os.environ[k] for k in thread_env_vars() if k in os.environ},
        "dlbench": {"version": dlbench.__version__, "git_commit": git_commit()},
    }


#: Where :func:`machine_load` reads ``/proc`` and ``/sys`` (tests point it at a fake tree).
MACHINE_ROOT_ENV = "DLBENCH_MACHINE_ROOT"
#: A machine is busy when its 1-minute load average is at least this share of the usable cores
#: (and at least 1): other work then competes with the benchmark for the CPU.
BUSY_LOAD_PER_CORE = 0.5


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def machine_load(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The machine's state right now: load average, CPU frequencies and throttle counters.

    Read from Linux's ``/proc/loadavg``, ``/sys/devices/system/cpu/cpu*/cpufreq/
    scaling_cur_freq`` and ``.../thermal_throttle/{core,package}_throttle_count``; what cannot
    be read is ``None`` and named in ``unavailable`` (with why), never guessed. The runner
    records it before and after each cell.

    Example:
        >>> sorted(machine_load())
        ['cpu_mhz', 'loadavg', 'throttle', 'unavailable', 'usable_cores']
    """
    base = Path(root if root is not None else os.environ.get(MACHINE_ROOT_ENV, "/"))
    unavailable: list[str] = []
    loadavg = None
    text = _read(base / "proc/loadavg")
    try:
        loadavg = [float(v) for v in (text or "").split()[:3]] or None
    except ValueError:
        loadavg = None
    if loadavg is None or len(loadavg) != 3:
        loadavg = None
        unavailable.append("loadavg: /proc/loadavg not readable")
    cpu_dir = base / "sys/devices/system/cpu"
    cpus = sorted(cpu_dir.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:]))
    freqs: list[float] = []
    throttle: dict[str, int] = {}
    for cpu in cpus:
        khz = _read(cpu / "cpufreq/scaling_cur_freq")
        if khz and khz.isdigit():
            freqs.append(int(khz) / 1000.0)
        for name in ("core_throttle_count", "package_throttle_count"):
            count = _read(cpu / "thermal_throttle" / name)
            if count and count.isdigit():
                throttle[name] = throttle.get(name, 0) + int(count)
    cpu_mhz = None
    if freqs:
        cpu_mhz = {
            "min": min(freqs),
            "mean": sum(freqs) / len(freqs),
            "max": max(freqs),
            "cpus": len(freqs),
        }
    else:
        unavailable.append("cpu frequency: no cpufreq/scaling_cur_freq (e.g. a VM or container)")
    if not throttle:
        throttle = None
        unavailable.append("thermal throttle counters: no thermal_throttle in sysfs")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 1
    return {
        "loadavg": loadavg,
        "cpu_mhz": cpu_mhz,
        "throttle": throttle,
        "usable_cores": usable,
        "unavailable": unavailable,
    }


def busy_message(load: dict[str, Any]) -> str | None:
    """A warning when the machine is busy (1-minute load average at least
    :data:`BUSY_LOAD_PER_CORE` of the usable cores, and at least 1); ``None`` when it is not or
    the load is unknown."""
    avg = load.get("loadavg")
    cores = load.get("usable_cores") or 1
    if not avg:
        return None
    limit = max(1.0, BUSY_LOAD_PER_CORE * cores)
    if avg[0] < limit:
        return None
    return (
        f"BUSY MACHINE: load average {avg[0]:.2f} over the last minute on {cores} usable "
        f"core(s) (busy from {limit:g}): other work competes for the CPU, so timings will be "
        "noisy and may flip between runs. Benchmark on a quiet machine for results to trust."
    )


def cell_load_notes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Validity notes of one cell from the machine's state before and after it: busy at either
    end, throttle counters that grew, a CPU frequency that dropped by more than 10%."""
    notes = []
    for when, load in (("before", before), ("after", after)):
        if busy_message(load):
            notes.append(
                f"machine busy {when} the cell: load average {load['loadavg'][0]:.2f} on "
                f"{load.get('usable_cores')} usable core(s)"
            )
    tb, ta = before.get("throttle") or {}, after.get("throttle") or {}
    for name in sorted(set(tb) & set(ta)):
        if ta[name] > tb[name]:
            notes.append(f"CPU throttled during the cell: {name} +{ta[name] - tb[name]}")
    fb, fa = before.get("cpu_mhz") or {}, after.get("cpu_mhz") or {}
    if fb.get("mean") and fa.get("mean") and fa["mean"] < 0.9 * fb["mean"]:
        notes.append(
            f"CPU frequency dropped during the cell: mean {fb['mean']:.0f} -> {fa['mean']:.0f} MHz"
        )
    return notes


def thread_warnings(intra: int, inter: int) -> list[str]:
    """A warning per thread count above the cores this process may use (its affinity mask)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 1
    out = []
    for name, n in (("intra-op", intra), ("inter-op", inter)):
        if n > usable:
            out.append(
                f"{n} {name} threads requested but only {usable} core(s) are usable "
                "(os.sched_getaffinity): threads will share cores and timings will be noisy"
            )
    return out


def check_devices(devices: list[str]) -> None:
    """Refuse, before any worker starts, a CUDA device this machine does not have.

    GPUs are counted with ``nvidia-smi`` (no framework imported), within
    ``CUDA_VISIBLE_DEVICES`` when it is set.

    Raises:
        ConfigError: ``cuda`` with no GPU, or ``cuda:N`` beyond the GPUs visible.
    """
    from dlbench.errors import ConfigError

    wanted = [d for d in devices if d.split(":")[0] == "cuda"]
    if not wanted:
        return
    count = len(gpu_info())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        count = min(count, len(ids))
    for d in wanted:
        index = int(d.split(":")[1]) if ":" in d else 0
        if index >= count:
            found = (
                "no GPU found (nvidia-smi missing or listing none"
                + (f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "")
                + ")"
                if count == 0
                else f"{count} GPU(s) visible (cuda:0 to cuda:{count - 1})"
            )
            raise ConfigError(
                f"Expected a CUDA device for --device {d}. Received: {found}. Use --device cpu, "
                "or run where the GPU is visible."
            )
