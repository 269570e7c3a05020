"""Time to a stable result: dlbench's ``target_ci`` stop rule against fixed-iteration peers.

The question: to report a median whose 95% confidence interval is ``--target-ci`` of the median
wide (0.02 = +-1%), how much wall time does each approach spend, and does it get there?

On one model and batch (default resnet20, torch, batch 1, 1 thread), each repetition runs,
in alternating order, on the same built model:

- **dlbench**: :func:`dlbench.execution.measure.time_model` with ``target_ci`` and ``--min-time``
  (its warm-up until steady, then at least 20 calls and ``--min-time`` seconds, and on until the
  bootstrap CI of the median is narrow enough); the same as ``dlbench run --target-ci 0.02
  --min-time 0.1``;
- **timm-style**: ``benchmark.py``'s defaults, 10 warm-up calls then 40 timed calls;
- **optimum-benchmark-style**: 10 warm-up runs then at least 10 iterations and ``--duration``
  seconds (its defaults: 10 and 10 s);
- **fixed N** for each N of ``--ladder``: 10 warm-up calls then N timed calls: what a
  fixed-iteration tool must be set to in advance to reach the same interval.

Every approach's interval is computed the same way (bootstrap 95% CI of the median of its own
samples, :func:`dlbench.analysis.stats.relative_ci_width`), and wall time counts everything the
approach runs, warm-up included. Reported per approach: median wall time, median relative CI
width, and the share of repetitions that reached the target. The "fixed N needed" row is the
smallest N of the ladder that reached the target in every repetition.

Usage:
    .venv/bin/python benchmarks/time_to_stable.py [--backend torch] [--model resnet20]
        [--batch 1] [--threads 1] [--target-ci 0.02] [--min-time 0.1] [--runs 5] [--duration 10]
        [--ladder 40,80,160,320,640,1280] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _fixed(model, x, warmup: int, n: int | None = None, duration: float | None = None):
    """``warmup`` untimed calls, then ``n`` timed calls (or until ``n`` calls and ``duration``
    seconds). Returns (wall seconds including warm-up, samples)."""
    t_start = time.perf_counter()
    for _ in range(warmup):
        model.sync(model.forward(x))
    samples: list[float] = []
    t_measure = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        model.sync(model.forward(x))
        samples.append(time.perf_counter() - t0)
        enough_calls = n is None or len(samples) >= n
        enough_time = duration is None or time.perf_counter() - t_measure >= duration
        if enough_calls and enough_time:
            break
    return time.perf_counter() - t_start, samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="torch")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target-ci", type=float, default=0.02)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument(
        "--min-time",
        type=float,
        default=0.1,
        help="dlbench's min_time floor (seconds) with the target: `dlbench run --min-time`",
    )
    p.add_argument("--ladder", default="40,80,160,320,640,1280")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import dlbench
    from dlbench.analysis.stats import relative_ci_width
    from dlbench.execution.measure import time_model

    backend = dlbench.get_backend(args.backend, intra_op_threads=args.threads)
    spec = dlbench.zoo.get(args.model)
    model = backend.build(spec)
    batch = np.random.default_rng(0).standard_normal((args.batch, *spec.input_shape))
    x = model.to_device(batch.astype(np.float32))
    ladder = [int(v) for v in args.ladder.split(",") if v]

    rows: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, wall: float, samples) -> None:
        rows.setdefault(name, []).append((wall, relative_ci_width(samples)))

    def run_dlbench() -> None:
        t0 = time.perf_counter()
        t = time_model(
            model, batch.astype(np.float32), target_ci=args.target_ci, min_time=args.min_time
        )
        add("dlbench --target-ci", time.perf_counter() - t0, t.samples)

    approaches = [
        run_dlbench,
        lambda: add("timm-style (10 + 40)", *_fixed(model, x, 10, 40)),
        lambda: add(
            f"optimum-style (10 + >=10 and {args.duration:g} s)",
            *_fixed(model, x, 10, 10, args.duration),
        ),
        *[(lambda n=n: add(f"fixed N={n}", *_fixed(model, x, 10, n))) for n in ladder],
    ]
    for r in range(args.runs):
        order = approaches if r % 2 == 0 else approaches[::-1]
        for fn in order:
            fn()

    target = args.target_ci
    print(
        f"{args.model} on {args.backend}, batch {args.batch}, {args.threads} thread(s), "
        f"{args.runs} repetitions; target: 95% CI of the median <= {target:.1%} of the median"
    )
    print(f"{'approach':<44} {'wall s (median)':>16} {'CI width (median)':>18} {'reached':>8}")
    summary = {}
    for name, vals in rows.items():
        walls = [w for w, _ in vals]
        widths = [c for _, c in vals]
        reached = sum(c <= target for c in widths)
        summary[name] = {
            "wall_s": walls,
            "ci_width": widths,
            "median_wall_s": statistics.median(walls),
            "median_ci_width": statistics.median(widths),
            "reached": reached,
            "runs": len(vals),
        }
        print(
            f"{name:<44} {statistics.median(walls):>16.2f} "
            f"{statistics.median(widths):>17.2%} {reached:>5}/{len(vals)}"
        )
    needed = next(
        (n for n in ladder if summary[f"fixed N={n}"]["reached"] == args.runs),
        None,
    )
    d = summary["dlbench --target-ci"]
    if needed is None:
        print(f"no fixed N of the ladder reached the target in every repetition ({ladder})")
    else:
        f = summary[f"fixed N={needed}"]
        print(
            f"fixed N needed for the target in every repetition: {needed} "
            f"({f['median_wall_s']:.2f} s); dlbench: {d['median_wall_s']:.2f} s "
            f"(ratio {f['median_wall_s'] / d['median_wall_s']:.2f}x), reached "
            f"{d['reached']}/{d['runs']}"
        )
    if args.json:
        out = {"args": vars(args) | {"json": str(args.json)}, "summary": summary, "needed": needed}
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
