"""Does dlbench's stopwatch agree with ``torch.utils.benchmark``? Same model, same call, one process.

For each model (zoo ``mlp``, ``lenet5``, ``resnet20`` by default; batch 1 and a larger batch), on
the torch backend, the two timers measure the same call ``sync(forward(x))`` in alternating
order, round after round. ``torch.utils.benchmark.Timer(stmt, globals, num_threads=<threads in
force>)`` (``num_threads`` explicit: the Timer otherwise runs with 1 thread) gives two estimators:

- ``blocked_autorange(min_run_time=T).median``: the median of *block means* (blocks of many
  calls), compared with dlbench's loop mean ``wall_time / n`` (mean of the measured loop);
- ``timeit(number=k)`` repeated for T seconds, ``k`` calls making a block of about 1 ms: the
  median of these short blocks is compared with dlbench's ``Timing.median`` (median of per-call
  times; for calls longer than 1 ms, ``k`` is 1 and both are medians of single calls).

Like is compared with like: a median of per-call times is robust to the process being
descheduled (it skips the calls that were), a block mean is not, so on a machine shared with
other jobs the two families differ by the share of CPU time lost, whoever measures them. The
figures are medians over rounds of the ratio dlbench / torch. The bar (``--tolerance``, 5%)
applies to the medians; the means and the cross ratio (dlbench median / blocked_autorange
median) are printed for information, and agree only on an idle machine.

Usage:
    .venv/bin/python benchmarks/timer_agreement.py [--models mlp,lenet5,resnet20]
        [--batches 1,32] [--rounds 7] [--seconds 0.3] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys


def _short_block_median(timer, seconds: float, block_s: float = 1e-3) -> float:
    """torch.utils.benchmark in blocks of about ``block_s``: ``timer.timeit(number=k)`` for
    ``seconds``; the median of the block means. Blocks this short are rarely descheduled (a time
    slice is several ms), and ``k`` calls amortise the Timer's own per-block work."""
    import time

    est = timer.timeit(number=3).median
    number = max(1, round(block_s / est)) if est > 0 else 1
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 10:
        times.append(timer.timeit(number=number).median)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,lenet5,resnet20")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0.3, help="per timer per round")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (inter-op is 1)")
    p.add_argument("--tolerance", type=float, default=0.05, help="agreement bar (relative)")
    p.add_argument("--json", help="write the raw figures here")
    args = p.parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))

    # Thread settings before torch loads, as the runner does for its workers.
    from dlbench.execution.runner import thread_env

    os.environ.update(thread_env(args.threads, 1))
    import numpy as np
    import torch
    from torch.utils.benchmark import Timer

    import dlbench
    from dlbench.execution.measure import time_model

    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rows = []
    print(
        f"{'model':<9}{'bs':>4}{'median us':>11}{'torch':>11}{'ratio':>7}"
        f"{'loop mean':>12}{'torch blk':>11}{'ratio':>7}{'cross':>8}"
    )
    for name in args.models.split(","):
        info = next(d for d in dlbench.zoo.describe() if d["name"] == name)
        shape = tuple(info["input_shape"])
        spec = dlbench.zoo.get(name, input_shape=shape, num_classes=10)
        model = dlbench.get_backend("torch", intra_op_threads=args.threads).build(spec, "cpu")
        for bs in (int(b) for b in args.batches.split(",")):
            batch = np.random.default_rng(0).standard_normal((bs, *shape)).astype(np.float32)
            x = model.to_device(batch)
            timer = Timer(
                stmt="sync(forward(x))",
                globals={"sync": model.sync, "forward": model.forward, "x": x},
                num_threads=threads,
            )
            runs: dict[str, list[float]] = {k: [] for k in ("med", "mean", "t_med", "t_block")}
            for r in range(args.rounds):
                for who in ("dlbench", "torch") if r % 2 == 0 else ("torch", "dlbench"):
                    if who == "dlbench":
                        t = time_model(model, batch, "compute", min_iters=20, min_time=args.seconds)
                        runs["med"].append(t.median)
                        runs["mean"].append(t.wall_time / t.n)
                    else:
                        runs["t_block"].append(
                            timer.blocked_autorange(min_run_time=args.seconds / 2).median
                        )
                        runs["t_med"].append(_short_block_median(timer, args.seconds / 2))

            def ratio(a: str, b: str, runs: dict[str, list[float]] = runs) -> float:
                return statistics.median(x / y for x, y in zip(runs[a], runs[b]))

            row = {
                "model": name,
                "batch": bs,
                **{f"{k}_s": statistics.median(v) for k, v in runs.items()},
                "ratio_median": ratio("med", "t_med"),
                "ratio_mean": ratio("mean", "t_block"),
                "cross_ratio": ratio("med", "t_block"),
                "per_round_s": runs,
            }
            row["agree"] = abs(row["ratio_median"] - 1) <= args.tolerance
            rows.append(row)
            us = 1e6
            print(
                f"{name:<9}{bs:>4}"
                f"{row['med_s'] * us:>11.1f}{row['t_med_s'] * us:>11.1f}{row['ratio_median']:>7.3f}"
                f"{row['mean_s'] * us:>12.1f}{row['t_block_s'] * us:>11.1f}{row['ratio_mean']:>7.3f}"
                f"{row['cross_ratio']:>8.3f}",
                flush=True,
            )
    bad = [r for r in rows if not r["agree"]]
    print(
        f"\n{args.rounds} alternating rounds, {args.seconds} s per timer per round, "
        f"{threads} thread(s), torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores: "
        + ("all agree" if not bad else f"{len(bad)} disagree")
        + f" within {args.tolerance:.0%} (median per call vs torch's median per call)"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"command": sys.argv, "rows": rows}, fh, indent=1)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
