"""Memory of a worker process: peak RSS, the model's own footprint, GPU memory.

Framework-free: a framework's GPU statistics are read only when that framework is already in
``sys.modules`` (the backend imported it) and the model runs on a CUDA device; NVML is read
through ``pynvml`` when it is installed. Nothing here imports a framework that is not loaded.

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


def _torch_gpu(index: int) -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return {
        "max_allocated_bytes": int(torch.cuda.max_memory_allocated(index)),
        "max_reserved_bytes": int(torch.cuda.max_memory_reserved(index)),
        "allocated_bytes": int(torch.cuda.memory_allocated(index)),
    }


def _jax_gpu(index: int) -> dict[str, Any] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    gpus = [d for d in jax.devices() if d.platform in ("gpu", "cuda")]
    if index >= len(gpus):
        return None
    stats = gpus[index].memory_stats() or {}
    out = {
        "peak_bytes_in_use": stats.get("peak_bytes_in_use"),
        "bytes_in_use": stats.get("bytes_in_use"),
        "bytes_limit": stats.get("bytes_limit"),
    }
    return {k: int(v) for k, v in out.items() if v is not None} or None


def _tf_gpu(index: int) -> dict[str, Any] | None:
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.config.list_logical_devices("GPU"):
        return None
    info = tf.config.experimental.get_memory_info(f"GPU:{index}")
    return {"peak_bytes": int(info["peak"]), "current_bytes": int(info["current"])}


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


_GPU_READERS = {"torch": _torch_gpu, "jax": _jax_gpu, "tensorflow": _tf_gpu, "nvml": _nvml}


def gpu_memory(model: Any) -> dict[str, Any]:
    """GPU memory for a model on CUDA: each loaded framework's allocator, and NVML.

    Returns ``{}`` for a CPU model. A reader that fails records its error instead of raising:
    memory figures never cost a benchmark its timings.
    """
    index = _cuda_index(model)
    if index is None:
        return {}
    out: dict[str, Any] = {"device_index": index}
    for name, reader in _GPU_READERS.items():
        try:
            value = reader(index)
        except Exception as exc:  # a broken driver or API change: say so, carry on
            value = {"error": f"{type(exc).__name__}: {exc}"}
        if value:
            out[name] = value
    return out


def reset_peaks(model: Any) -> None:
    """Reset the allocator peaks that can be reset (torch, TensorFlow) before a cell, so the
    peaks in :func:`snapshot` are the cell's own. JAX and NVML peaks cannot be reset."""
    index = _cuda_index(model)
    if index is None:
        return
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats(index)
    except Exception:
        pass
    tf = sys.modules.get("tensorflow")
    try:
        if tf is not None and tf.config.list_logical_devices("GPU"):
            tf.config.experimental.reset_memory_stats(f"GPU:{index}")
    except Exception:
        pass


def free_gpu_cache() -> None:
    """Give cached GPU blocks back after an out-of-memory error (torch; others free on GC)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


def snapshot(model: Any) -> dict[str, Any]:
    """The memory block of a cell record.

    Returns:
        ``peak_rss_bytes`` (peak resident memory of this worker so far), ``rss_bytes`` (now),
        ``weight_bytes`` (the model's parameters, when the backend knows) and, for a model on
        CUDA, ``gpu``: allocator statistics per loaded framework (torch ``max_allocated_bytes``
        since the cell started, JAX ``peak_bytes_in_use`` since the process started, TensorFlow
        ``peak_bytes`` since the cell started) and NVML device/process usage.
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
