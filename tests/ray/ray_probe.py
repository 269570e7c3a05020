"""A worker plugin for the Ray tests: at exit, a dlbench worker writes which frameworks (and
whether Ray) its process imported, with its pid, into ``$DLBENCH_RAY_PROBE_DIR``."""

import atexit
import json
import os
import sys

FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime")


def _write() -> None:
    folder = os.environ.get("DLBENCH_RAY_PROBE_DIR")
    if not folder:
        return
    data = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "frameworks": sorted(m for m in FRAMEWORKS if m in sys.modules),
        "ray": "ray" in sys.modules,
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "mkl": os.environ.get("MKL_NUM_THREADS"),  # Ray sets OMP_NUM_THREADS only
        "shipped": os.environ.get("DLBENCH_SHIPPED_DATA"),
    }
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w", encoding="utf-8") as fh:
        json.dump(data, fh)


if sys.argv and sys.argv[0].endswith(os.path.join("execution", "worker.py")):
    atexit.register(_write)
