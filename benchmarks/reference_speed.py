"""How fast the float64 NumPy reference runs: resnet20's accuracy pass over a full-size CIFAR-10
test split, and the convolution against the per-tap implementation it replaced.

Two figures, from one run:

1. **The accuracy pass, end to end**: ``dlbench.run`` with ``backends=["numpy"]``,
   ``scenarios=["accuracy"]`` on a generated CIFAR-10 in the official python format
   (10,000 test images, the same files as ``benchmarks/cifar_loader_speed.py``; the images are
   random, so the accuracy itself is meaningless: the compute is the real one). Reported: the
   accuracy cell's own seconds (the worker's timed pass over the split) and the run's wall time
   (worker start, parity, everything). The issue's goal: <= 40 s (377 s before).
2. **The convolution, same process, same images**: the model's forward pass on ``--subset``
   images with today's im2col + BLAS ``conv2d`` and with the per-tap ``einsum`` one it replaced
   (kept below, verbatim), alternating, median of ``--repeats``; their outputs must agree to
   1e-9 of the output scale.

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


def compare_conv(subset: int, repeats: int) -> dict:
    import dlbench
    from dlbench.backends.numpy import ops

    model = dlbench.get_backend("numpy").build(dlbench.zoo.get("resnet20"))
    x = np.random.default_rng(0).standard_normal((subset, 3, 32, 32)).astype(np.float32)
    x = model.to_device(x)
    fns = ops.OPS._fns
    current = fns["conv2d"]
    times: dict[str, list[float]] = {"im2col": [], "per_tap": []}
    outs = {}
    for _ in range(repeats):
        for name, fn in (("im2col", current), ("per_tap", per_tap_conv2d)):
            fns["conv2d"] = fn
            try:
                t0 = time.perf_counter()
                outs[name] = model.to_numpy(model.forward(x))
                times[name].append(time.perf_counter() - t0)
            finally:
                fns["conv2d"] = current
    scale = float(np.abs(outs["per_tap"]).max())
    diff = float(np.abs(outs["im2col"] - outs["per_tap"]).max())
    if diff > 1e-9 * max(scale, 1e-300):
        raise SystemExit(
            f"im2col and per-tap disagree: max abs diff {diff:.3g} (scale {scale:.3g})"
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "images": subset,
        "repeats": repeats,
        "median_s": med,
        "speedup": med["per_tap"] / med["im2col"],
        "max_abs_diff": diff,
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/dlbench-cifar10-fullsize"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--subset", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-run", action="store_true", help="only the convolution comparison")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    out: dict = {"threads": args.threads}
    with threadpool_limits(args.threads):
        out["conv2d"] = compare_conv(args.subset, args.repeats)
    c = out["conv2d"]
    print(
        f"resnet20 forward, {c['images']} images, float64, {args.threads} thread(s), "
        f"median of {c['repeats']}: im2col {c['median_s']['im2col']:.2f} s, per-tap "
        f"{c['median_s']['per_tap']:.2f} s ({c['speedup']:.1f}x); max abs diff "
        f"{c['max_abs_diff']:.2g} at output scale {c['output_scale']:.3g}"
    )
    if not args.skip_run:
        root = _cifar_generator()(args.root)
        out["accuracy_pass"] = a = accuracy_pass(root, args.threads)
        print(
            f"dlbench run resnet20 / cifar10 test ({a['images']} images) on the numpy reference, "
            f"accuracy scenario: evaluation {a['cell_seconds']:.1f} s, whole run {a['run_wall_s']:.1f} s "
            "(goal <= 40 s)"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
