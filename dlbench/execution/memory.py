"""Memory of a worker process: peak RSS, the model's own footprint, GPU memory.

Framework-free: a model on a CUDA device reports its allocator's statistics through its backend's
hooks (``memory_stats``, ``reset_peaks``, ``release_memory``); NVML is read through ``pynvml`` when
it is installed. Nothing here imports a framework.

Example:
    >>> import dlbench
    >>> model = dlbench.get_backend("numpy").build(dlbench.zoo.get("mlp"))
    >>> sorted(snapshot(model))
    ['peak_rss_bytes', 'rss_bytes', 'weight_bytes']
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def rss_bytes() -> int | None:
    """Current resident set size of this process (bytes), when it can be read."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # psutil missing or the platform refuses
        return None


def _cuda_index(model: Any) -> int | None:
    """The CUDA device index the model runs on, or None for a CPU model."""
    device = str(getattr(model, "device", "cpu") or "cpu")
    kind, _, index = device.partition(":")
    if kind != "cuda":
        return None
    return int(index) if index.isdigit() else 0


def _nvml(index: int) -> dict[str, Any] | None:
    try:
        import pynvml
    except ImportError:
        return None
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        out: dict[str, Any] = {
            "device_used_bytes": int(info.used),
            "device_total_bytes": int(info.total),
        }
        try:
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory]
            if mine:
                out["process_used_bytes"] = int(sum(mine))
        except pynvml.NVMLError:
            pass
        return out
    finally:
        pynvml.nvmlShutdown()


def _backend_stats(model: Any, index: int) -> dict[str, Any]:
    """The model's backend's allocator statistics (its ``memory_stats`` hook)."""
    hook = getattr(getattr(model, "backend", None), "memory_stats", None)
    if not callable(hook):
        return {}
    return hook(index) or {}


def gpu_memory(model: Any) -> dict[str, Any]:
    """GPU memory for a model on CUDA: its backend's allocator (the backend's ``memory_stats``
    hook, e.g. ``{"torch": {...}}``), and NVML.

    Returns ``{}`` for a CPU model. A reader that fails records its error instead of raising:
    memory figures never cost a benchmark its timings.
    """
    index = _cuda_index(model)
    if index is None:
        return {}
    out: dict[str, Any] = {"device_index": index}
    try:
        out.update(_backend_stats(model, index))
    except Exception as exc:  # a broken driver or API change: say so, carry on
        name = getattr(getattr(model, "backend", None), "name", "backend")
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        value = _nvml(index)
    except Exception as exc:
        value = {"error": f"{type(exc).__name__}: {exc}"}
    if value:
        out["nvml"] = value
    return out


def reset_peaks(model: Any) -> None:
    """Reset the allocator peaks that can be reset (the backend's ``reset_peaks`` hook) before
    a cell, so the peaks in :func:`snapshot` are the cell's own. NVML peaks cannot be reset."""
    index = _cuda_index(model)
    hook = getattr(getattr(model, "backend", None), "reset_peaks", None)
    if index is None or not callable(hook):
        return
    try:
        hook(index)
    except Exception:
        pass


def free_gpu_cache(model: Any = None) -> None:
    """Give cached GPU blocks back after an out-of-memory error (the backend's
    ``release_memory`` hook; every framework also frees on garbage collection)."""
    import gc

    gc.collect()
    hook = getattr(getattr(model, "backend", None), "release_memory", None)
    try:
        if callable(hook):
            hook()
    except Exception:
        pass


def snapshot(model: Any) -> dict[str, Any]:
    """The memory block of a cell record.

    Returns:
        ``peak_rss_bytes`` (peak resident memory of this worker so far), ``rss_bytes`` (now),
        ``weight_bytes`` (the model's parameters, when the backend knows) and, for a model on
        CUDA, ``gpu``: its backend's allocator statistics under the backend's key (each
        backend documents whether its peak is since the cell or the process started) and
        NVML device/process usage.
    """
    weight_fn = getattr(model, "weight_bytes", None)
    try:
        weights = weight_fn() if callable(weight_fn) else None
    except Exception:
        weights = None
    out: dict[str, Any] = {
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_bytes": rss_bytes(),
        "weight_bytes": weights,
    }
    gpu = gpu_memory(model)
    if gpu:
        out["gpu"] = gpu
    return out
