"""How fast the float64 NumPy reference runs: resnet20's accuracy pass over a full-size CIFAR-10
test split, and its forward pass against the plain interpreter and the per-tap convolution.

Three figures, from one run:

1. **The accuracy pass, end to end**: ``dlbench.run`` with ``backends=["numpy"]``,
   ``scenarios=["accuracy"]`` on a generated CIFAR-10 in the official python format
   (10,000 test images, the same files as ``benchmarks/cifar_loader_speed.py``; the images are
   random, so the accuracy itself is meaningless: the compute is the real one). Reported: the
   accuracy cell's own seconds (the worker's timed pass over the split) and the run's wall time
   (worker start, parity, everything). The issue's goal: <= 40 s (377 s before).
2. **The forward pass, same process, same images**: resnet20 on ``--subset`` images three
   ways, alternating, median of ``--repeats``: the compiled program the model runs
   (``backends/numpy/program.py``: batch norm folded, in-place epilogues, micro-batches on
   ``--threads`` threads), the plain node-by-node interpreter of the same op table (im2col +
   BLAS ``conv2d``), and that interpreter with the per-tap ``einsum`` convolution of before
   issue 23 (kept below, verbatim); the first two must agree with the third to 1e-9 of the
   output scale.
3. **The same pass in this process**, with its CPU seconds: CPU seconds / threads is what the
   wall time comes down to on a quiet machine with perfect scaling (a figure that a busy machine
   distorts less than the wall time).

Usage:
    .venv/bin/python benchmarks/reference_speed.py [--threads 2] [--subset 256] [--repeats 3]
        [--root /tmp/dlbench-cifar10-fullsize] [--skip-run] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _cifar_generator():
    path = HERE / "cifar_loader_speed.py"
    spec = importlib.util.spec_from_file_location("dlbench_bench_cifar_speed", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.generate


def per_tap_conv2d(xs, p, n):
    """The reference's convolution before issue 23: one ``einsum`` per kernel tap."""
    x, w = xs[0], p["weight"]
    t, b, l, r = n.attrs["pads"]  # noqa: E741
    (sh, sw), (dh, dw), g = n.attrs["stride"], n.attrs["dilation"], n.attrs["groups"]
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    o, cg, kh, kw = w.shape
    _, oh, ow = n.out_shape
    nb = x.shape[0]
    out = np.zeros((nb, o, oh, ow))
    og = o // g
    for i in range(kh):
        for j in range(kw):
            xs_ij = x[
                :,
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
            ]
            w_ij = w[:, :, i, j]
            if g == 1:
                out += np.einsum("nchw,oc->nohw", xs_ij, w_ij, optimize=True)
            elif cg == 1 and og == 1:
                out += xs_ij * w_ij[:, 0][None, :, None, None]
            else:
                for k in range(g):
                    out[:, k * og : (k + 1) * og] += np.einsum(
                        "nchw,oc->nohw",
                        xs_ij[:, k * cg : (k + 1) * cg],
                        w_ij[k * og : (k + 1) * og],
                        optimize=True,
                    )
    if "bias" in p:
        out += p["bias"][None, :, None, None]
    return out


def compare_forward(subset: int, repeats: int, threads: int) -> dict:
    """The model's forward pass three ways, alternating: the compiled program (what dlbench
    runs), the plain node-by-node interpreter of the same op table, and that interpreter with
    the per-tap convolution. Raises SystemExit when their outputs disagree beyond 1e-9."""
    import dlbench
    from dlbench.backends.numpy import ops

    model = dlbench.get_backend("numpy", intra_op_threads=threads).build(
        dlbench.zoo.get("resnet20")
    )
    x = np.random.default_rng(0).standard_normal((subset, 3, 32, 32)).astype(np.float32)
    x = model.to_device(x)
    fns = ops.OPS._fns
    current = fns["conv2d"]

    def interpreter() -> np.ndarray:
        env = ops.OPS.run(model.nodes, {model.input_name: x}, model.params)
        return env[model.outputs[0]]

    def per_tap() -> np.ndarray:
        fns["conv2d"] = per_tap_conv2d
        try:
            return interpreter()
        finally:
            fns["conv2d"] = current

    ways = {"program": lambda: model.to_numpy(model.forward(x)), "interpreter": interpreter}
    ways["per_tap"] = per_tap
    times: dict[str, list[float]] = {k: [] for k in ways}
    outs = {}
    for _ in range(repeats):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    scale = float(np.abs(outs["per_tap"]).max())
    diffs = {k: float(np.abs(outs[k] - outs["per_tap"]).max()) for k in ("program", "interpreter")}
    for k, diff in diffs.items():
        if diff > 1e-9 * max(scale, 1e-300):
            raise SystemExit(
                f"{k} and per-tap disagree: max abs diff {diff:.3g} (scale {scale:.3g})"
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "images": subset,
        "repeats": repeats,
        "median_s": med,
        "max_abs_diff": diffs,
        "output_scale": scale,
    }


def accuracy_pass(root: Path, threads: int) -> dict:
    import dlbench

    t0 = time.perf_counter()
    doc = dlbench.run(
        {
            "model": "resnet20",
            "dataset": "cifar10",
            "dataset_root": str(root),
            "backends": ["numpy"],
            "scenarios": ["accuracy"],
            "intra_op_threads": threads,
            "reshape_model": False,
        }
    )
    wall = time.perf_counter() - t0
    (cell,) = [c for c in doc["cells"] if c.get("scenario") == "accuracy"]
    if cell.get("status") != "ok":
        raise SystemExit(f"the accuracy cell did not run: {cell.get('error')}")
    return {
        "images": doc["dataset"].get("num_samples"),
        "cell_seconds": cell.get("eval_wall_time_s"),
        "run_wall_s": wall,
        "accuracy": (cell.get("metrics") or {}).get("accuracy"),
    }


def in_process_pass(root: Path, threads: int, batch_size: int = 256) -> dict:
    """The same pass in this process (``model.predict`` over the split's batches, as the
    accuracy scenario does), with the process's CPU seconds beside the wall time: on a busy
    machine the wall time is the scheduler's, while CPU seconds / threads bounds the wall time
    a quiet machine can reach."""
    import dlbench

    dataset = dlbench.datasets.load("cifar10", root=str(root), split="test")
    model = dlbench.get_backend("numpy", intra_op_threads=threads).build(
        dlbench.zoo.get("resnet20")
    )
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for batch in dataset.batches(batch_size):
        n += len(model.predict(batch.inputs))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"images": n, "wall_s": wall, "cpu_s": cpu, "cpu_per_thread_s": cpu / threads}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/dlbench-cifar10-fullsize"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--subset", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-run", action="store_true", help="only the forward-pass comparison")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    out: dict = {"threads": args.threads}
    with threadpool_limits(args.threads):
        out["forward"] = c = compare_forward(args.subset, args.repeats, args.threads)
    m, d = c["median_s"], c["max_abs_diff"]
    print(
        f"resnet20 forward, {c['images']} images, float64, {args.threads} thread(s), "
        f"median of {c['repeats']}: program {m['program']:.2f} s, node-by-node interpreter "
        f"{m['interpreter']:.2f} s, interpreter with the per-tap conv {m['per_tap']:.2f} s; "
        f"max abs diff to per-tap {d['program']:.2g} (program), {d['interpreter']:.2g} "
        f"(interpreter) at output scale {c['output_scale']:.3g}"
    )
    if not args.skip_run:
        root = _cifar_generator()(args.root)
        out["accuracy_pass"] = a = accuracy_pass(root, args.threads)
        print(
            f"dlbench run resnet20 / cifar10 test ({a['images']} images) on the numpy reference, "
            f"accuracy scenario: evaluation {a['cell_seconds']:.1f} s, whole run {a['run_wall_s']:.1f} s "
            "(goal <= 40 s)"
        )
        out["in_process"] = b = in_process_pass(root, args.threads)
        print(
            f"the same pass in this process ({b['images']} images, {args.threads} thread(s)): "
            f"wall {b['wall_s']:.1f} s, CPU {b['cpu_s']:.1f} s "
            f"({b['cpu_per_thread_s']:.1f} s per thread: the wall time of a quiet machine "
            "with perfect scaling)"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
