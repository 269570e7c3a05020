"""How fast dlbench reads CIFAR-10 into memory, against ``keras.datasets.cifar10``.

Generates a full-size CIFAR-10 (50,000 + 10,000 images) in the official python format
(``cifar-10-batches-py/``: Python 2 protocol-2 pickles, ``b"data"`` a uint8 ndarray pickled via
``numpy.core.multiarray._reconstruct``, ``b"labels"`` a list), then times, on the same files:

- dlbench: ``load("cifar10", split="train")`` + ``load("cifar10", split="test")``, arrays
  from ``.raw()`` (uint8 N x 3 x 32 x 32, int64 labels);
- keras: ``keras.datasets.cifar10.load_data()`` with its download step pointed at the folder
  (``get_file`` patched to return it, so keras' sha256 of the archive is not timed; everything
  else, reading the six batches and building its arrays, is).

Each run is a fresh process (so neither loader inherits the other's heap); imports are outside
the timed region; the two alternate and the median of ``--repeats`` is reported. The files are
in the page cache for both alike. The first run of each also checks that both return the same
images and labels.

``--phases`` instead times, in one fresh process per round, where dlbench's time goes: parsing
the six pickles (everything but the pixels: the restricted unpickler over the spliced stream),
allocating the output and reading the pixels into it (with the minor page faults that costs;
on one thread, on the loader's reader threads, and into an anonymous map made with
``MAP_POPULATE`` so no read faults),
the same read into an output already touched (what the page faults cost), and a plain memcpy of
the same bytes between two touched buffers (the floor).

Usage:
    .venv/bin/python benchmarks/cifar_loader_speed.py [--root DIR] [--repeats 7] [--json out.json]
    .venv/bin/python benchmarks/cifar_loader_speed.py --phases [--repeats 7]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import mmap
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _formats():
    path = HERE.parent / "tests" / "datasets" / "formats.py"
    spec = importlib.util.spec_from_file_location("dlbench_bench_formats", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def generate(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    marker = folder / ".complete"
    if marker.is_file():
        return root
    formats = _formats()
    t0 = time.perf_counter()
    train = formats.random_cifar(50_000, 10, seed=0)
    test = formats.random_cifar(10_000, 10, seed=1)
    formats.write_files(formats.cifar10_files(train, test), root)
    marker.write_text("60000\n")
    print(f"generated 60,000 images in {folder} ({time.perf_counter() - t0:.1f} s)")
    return root


def time_dlbench(root: Path) -> tuple[float, tuple[np.ndarray, ...]]:
    from dlbench import datasets
    from dlbench.adapters.datasets import cifar  # noqa: F401  (imported, as keras' module is)

    t0 = time.perf_counter()
    tr = datasets.load("cifar10", root=str(root), split="train")
    te = datasets.load("cifar10", root=str(root), split="test")
    (xtr, ytr), (xte, yte) = tr.raw(), te.raw()
    return time.perf_counter() - t0, (xtr, ytr, xte, yte)


def time_keras(root: Path) -> tuple[float, tuple[np.ndarray, ...]]:
    from keras.src.datasets import cifar10

    cifar10.get_file = lambda *a, **k: str(root)  # the files are already here
    t0 = time.perf_counter()
    (xtr, ytr), (xte, yte) = cifar10.load_data()
    return time.perf_counter() - t0, (xtr, ytr, xte, yte)


def phases(root: Path) -> dict[str, float]:
    """One round of the phase breakdown (seconds; faults as counts)."""
    import resource

    from dlbench.adapters.datasets._unpickle import ArraySpan, safe_load_lazy

    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # noqa: E731
    t0 = time.perf_counter()
    parts = [safe_load_lazy(folder / n) for n in names]
    t1 = time.perf_counter()
    spans = [p[b"data"] for p in parts]
    assert all(isinstance(s, ArraySpan) for s in spans), "the pixels were not left in the files"
    labels = [np.asarray(p[b"labels"]).astype(np.int64) for p in parts]
    t2 = time.perf_counter()
    total = sum(s.nbytes for s in spans)
    f0 = faults()
    t3 = time.perf_counter()
    out = np.empty(total, np.uint8)
    _read_all(spans, out)
    t4 = time.perf_counter()
    f1 = faults()
    _read_all(spans, out)  # again, into pages already there
    t5 = time.perf_counter()
    src = out.copy()
    t6 = time.perf_counter()
    out[:] = src
    t7 = time.perf_counter()
    del labels, out, src
    from dlbench.adapters.datasets.cifar import _readers

    f2 = faults()
    t8 = time.perf_counter()
    out = np.empty(total, np.uint8)
    with _readers() as pool:
        _read_all(spans, out, pool)
    t9 = time.perf_counter()
    f3 = faults()
    del out
    populate = getattr(mmap, "MAP_POPULATE", 0)  # Linux: the kernel faults every page in
    t10 = time.perf_counter()
    region = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    out = np.frombuffer(region, np.uint8)
    _read_all(spans, out)
    t11 = time.perf_counter()
    del out
    region.close()
    return {
        "parse_6_files_s": t1 - t0,
        "labels_to_arrays_s": t2 - t1,
        "alloc_and_read_fresh_s": t4 - t3,
        "minor_faults_fresh": f1 - f0,
        "read_touched_s": t5 - t4,
        "memcpy_touched_s": t7 - t6,
        "alloc_and_read_fresh_threads_s": t9 - t8,
        "minor_faults_fresh_threads": f3 - f2,
        "alloc_populated_and_read_s": t11 - t10,
    }


def _read_all(spans: list, out: np.ndarray, pool=None) -> None:
    from dlbench.adapters.datasets._unpickle import wait_all

    at, reads = 0, []
    for s in spans:
        reads += s.read_into(out[at : at + s.nbytes], pool)
        at += s.nbytes
    wait_all(reads)


def _worker(which: str, root: Path, check: Path | None) -> None:
    """One timed load in this (fresh) process; prints the seconds."""
    t, arrays = (time_dlbench if which == "dlbench" else time_keras)(root)
    if check is not None:  # both loaders must return the same data
        xtr, ytr, xte, yte = arrays
        if which == "keras":
            xtr, xte = xtr.transpose(0, 3, 1, 2), xte.transpose(0, 3, 1, 2)
            ytr, yte = ytr[:, 0], yte[:, 0]
        digest = hashlib.sha256()
        for a in (xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)):
            digest.update(np.ascontiguousarray(a).tobytes())
        check.write_text(digest.hexdigest())
    print(f"{t:.6f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/dlbench-cifar10-fullsize"))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--phases", action="store_true", help="where dlbench's time goes")
    p.add_argument("--worker", choices=["dlbench", "keras", "phases"], help=argparse.SUPPRESS)
    p.add_argument("--check", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # the loader does not need a framework
    if args.worker == "phases":
        print(json.dumps(phases(args.root)))
        return 0
    if args.worker:
        if args.worker == "keras":
            import keras  # noqa: F401  (import time is not part of loading)
        _worker(args.worker, args.root, args.check)
        return 0

    root = generate(args.root)
    if args.phases:
        return _report_phases(root, args.repeats, args.json)
    times: dict[str, list[float]] = {"dlbench": [], "keras": []}
    digests: dict[str, str] = {}
    for r in range(args.repeats):
        for name in ("dlbench", "keras"):  # alternate, each run in a fresh process
            cmd = [sys.executable, __file__, "--worker", name, "--root", str(root)]
            check = args.root / f".check-{name}" if r == 0 else None
            if check is not None:
                cmd += ["--check", str(check)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times[name].append(float(out.strip().splitlines()[-1]))
            if check is not None:
                digests[name] = check.read_text()
    if digests["dlbench"] != digests["keras"]:
        print("error: dlbench and keras returned different data")
        return 1
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"CIFAR-10 python version, 60,000 images (train + test), {args.repeats} runs each, "
        "each in a fresh process; same data from both (checked):"
    )
    for k, v in times.items():
        print(
            f"  {k:8s} median {med[k] * 1e3:7.1f} ms   (min {min(v) * 1e3:.1f}, max {max(v) * 1e3:.1f})"
        )
    print(f"  keras / dlbench: {med['keras'] / med['dlbench']:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"runs_s": times, "median_s": med, "images": 60_000}, indent=2) + "\n"
        )
    return 0


def _report_phases(root: Path, repeats: int, out: Path | None) -> int:
    rounds = []
    for _ in range(repeats):  # each round in a fresh process, like the loads
        cmd = [sys.executable, __file__, "--worker", "phases", "--root", str(root)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rounds.append(json.loads(res.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"dlbench CIFAR-10 python load, phases (median of {repeats} fresh processes):")
    for k, v in med.items():
        print(f"  {k:32s} {v:10.0f}" if k.startswith("minor") else f"  {k:32s} {v * 1e3:8.1f} ms")
    if out:
        out.write_text(json.dumps({"rounds": rounds, "median": med}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
