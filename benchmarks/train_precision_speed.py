"""Training step time in bfloat16 / float16 against float32, per framework.

Per framework, in one fresh process (thread settings fixed before the framework loads), dlbench's
trainer of the same model (zoo ``resnet20`` by default), the same initial weights and batch, one
trainer per precision (``TrainConfig.precision``: torch autocast, TensorFlow's mixed policy
semantics, JAX's jmp-style cast; float16 with dynamic loss scaling). Each round times ``--steps``
steps per precision after ``--warmup`` steps, alternating the order every round; the figures are
medians over rounds of the per-round median step time, the ratio (reduced / float32) the median of
the per-round paired ratios, so load that drifts between rounds cancels. Each trainer's
``precision_info()`` is checked (its step really computed in the precision asked for).

On CPUs without bfloat16 / float16 matrix units a reduced-precision step is not expected to be
faster (the casts cost, the kernels may emulate); on GPUs it is the point.

Usage:
    .venv/bin/python benchmarks/train_precision_speed.py [--frameworks torch,tensorflow,jax]
        [--precisions bfloat16,float16] [--model resnet20] [--batch 32] [--rounds 5]
        [--steps 10] [--warmup 3] [--threads 1] [--input-shape 3,32,32] [--device cpu]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

FRAMEWORKS = ("torch", "tensorflow", "jax")


def _median_step(step, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import importlib

    import dlbench
    from dlbench.train import TrainConfig
    from dlbench.train.local import trainer_precision

    fw = args.worker
    if fw == "torch":
        import torch

        torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.input_shape.split(","))
    spec = dlbench.zoo.get(args.model, input_shape=shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, args.batch)
    make = importlib.import_module(f"dlbench.backends.{fw}.training").make_trainer
    precisions = ["float32", *args.precisions.split(",")]
    trainers, steps = {}, {}
    for p in precisions:
        cfg = TrainConfig(
            lr=0.05, batch_size=args.batch, intra_op_threads=args.threads, precision=p
        )
        t = make(spec, cfg, args.device)
        batch = t.to_device(x, y)
        trainers[p] = t
        steps[p] = lambda t=t, batch=batch: t.train_step(batch, 0.05)
    for step in steps.values():  # compile / trace, then warm up
        for _ in range(args.warmup):
            step()
    rounds: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(args.rounds):
        for p in precisions if r % 2 == 0 else list(reversed(precisions)):
            rounds[p].append(_median_step(steps[p], args.steps))
    out: dict[str, Any] = {"framework": fw, "model": args.model, "batch": args.batch}
    for p in precisions:
        info = trainer_precision(fw, trainers[p], trainers[p].config)
        ratios = [a / b for a, b in zip(rounds[p], rounds["float32"])]
        out[p] = {
            "step_s": statistics.median(rounds[p]),
            "ratio_to_float32": statistics.median(ratios),
            "observed_compute_dtypes": info and info["observed_compute_dtypes"],
            "rounds": rounds[p],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--precisions", default="bfloat16,float16")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--input-shape", default="3,32,32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TF_NUM_INTRAOP_THREADS": str(args.threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={args.threads}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    precisions = ["float32", *args.precisions.split(",")]
    results = []
    print(f"{'framework':<11} {'precision':<9} {'step ms':>9} {'ratio':>7}  compute dtypes seen")
    for fw in args.frameworks.split(","):
        cmd = [sys.executable, __file__, "--worker", fw, *(argv or sys.argv[1:])]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(f"{fw:<11} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(line[7:])
        results.append(r)
        for p in precisions:
            q = r[p]
            print(
                f"{fw:<11} {p:<9} {1e3 * q['step_s']:>9.2f} {q['ratio_to_float32']:>7.3f}  "
                f"{q['observed_compute_dtypes']}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
