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
