"""Does the Ray executor change the timings? The same benchmark with ``--executor local`` and
``--executor ray`` on one machine (issue 18).

Starts a one-node Ray cluster here (``ray.init(num_cpus=THREADS)``, or joins ``--ray-address``),
then runs the same config ``--rounds`` times with each executor, alternating which goes first in
each round (so a drift of the machine's state hits both alike). Each run is a full
``dlbench.run``: the groups are fresh worker processes in both cases; with Ray they are started
by a ``max_calls=1`` Ray task, and the spec and data come through the object store. Per cell, the
median per-call time of every run is kept; the table gives the median over rounds of each
executor, their ratio (ray / local), and the spread of each executor across its own rounds (the
noise the ratio has to be read against). What the issue asks: ratios within that noise, a few
percent.

Usage:
    .venv/bin/python benchmarks/ray_overhead.py [--backends numpy,onnxruntime] [--rounds 5]
        [--threads 1] [--scenario latency,throughput] [--batch-sizes 32] [--min-time 1]
        [--model digits_cnn] [--ray-address ADDR] [--json out.json]

Run it on a quiet machine: timings taken while other work runs are noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _config(args: argparse.Namespace, executor: str) -> dict:
    cfg = {
        "model": args.model,
        "backends": args.backends.split(","),
        "scenarios": args.scenario.split(","),
        "batch_sizes": [int(b) for b in args.batch_sizes.split(",")],
        "intra_op_threads": args.threads,
        "stop_rule": {"min_iters": args.min_iters, "min_time": args.min_time, "max_time": 30},
        "executor": executor,
    }
    if executor == "ray" and args.ray_address:
        cfg["ray_address"] = args.ray_address
    return cfg


def _medians(doc: dict) -> dict[str, float]:
    out = {}
    for cell in doc["cells"]:
        stats = ((cell.get("timing") or {}).get("stats")) or {}
        if cell["status"] in ("ok", "invalid") and stats.get("median"):
            out[cell["id"]] = float(stats["median"])
    return out


def _spread(values: list[float]) -> float:
    """Half the range over the median: how far one executor's rounds stray from each other."""
    if len(values) < 2:
        return float("nan")
    return (max(values) - min(values)) / 2 / statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="digits_cnn")
    p.add_argument("--backends", default="numpy,onnxruntime")
    p.add_argument("--scenario", default="latency,throughput")
    p.add_argument("--batch-sizes", default="32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-iters", type=int, default=20)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--ray-address", default=None)
    p.add_argument("--json", default=None, help="write the per-run medians here")
    args = p.parse_args(argv)

    import ray

    import dlbench

    if args.ray_address:
        ray.init(address=args.ray_address, log_to_driver=False)
    else:  # one node here, as many logical CPUs as the threads asked for
        ray.init(num_cpus=args.threads, log_to_driver=False, include_dashboard=False)
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    wall: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="dlbench-ray-overhead-") as tmp:
        for r in range(args.rounds):
            order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
            for executor in order:
                t0 = time.perf_counter()
                doc = dlbench.run(_config(args, executor), out=Path(tmp) / f"{executor}-{r}.json")
                wall[executor].append(time.perf_counter() - t0)
                runs[executor].append(_medians(doc))
                print(
                    f"round {r + 1}/{args.rounds} {executor:5s}: {wall[executor][-1]:.1f} s, "
                    f"{len(runs[executor][-1])} cells",
                    file=sys.stderr,
                    flush=True,
                )
    ray.shutdown()

    ids = sorted(set.intersection(*(set(m) for ms in runs.values() for m in ms)))
    print(f"{'cell':40s} {'local':>11s} {'ray':>11s} {'ray/local':>9s} {'spread L':>8s} {'R':>6s}")
    ratios = []
    for cid in ids:
        loc = [m[cid] for m in runs["local"]]
        ray_ = [m[cid] for m in runs["ray"]]
        ml, mr = statistics.median(loc), statistics.median(ray_)
        ratios.append(mr / ml)
        print(
            f"{cid:40s} {ml * 1e3:9.4f}ms {mr * 1e3:9.4f}ms {mr / ml:9.3f} "
            f"{_spread(loc):7.1%} {_spread(ray_):6.1%}"
        )
    if ratios:
        print(f"median ratio ray/local over {len(ids)} cells: {statistics.median(ratios):.3f}")
    print(
        "wall time per run (median): local "
        f"{statistics.median(wall['local']):.1f} s, ray {statistics.median(wall['ray']):.1f} s"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "runs": runs, "wall_s": wall}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
