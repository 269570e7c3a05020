"""A two-node Ray fleet on this machine, end to end from the CLI (issue 18): the README's table.

Starts a Ray cluster on 127.0.0.1 (``ray.cluster_utils.Cluster``) with two nodes labelled
``dlbench.node=alpha`` and ``dlbench.node=beta`` (``--cpus`` logical CPUs each), then runs

    dlbench run --executor ray --ray-address <cluster> --nodes all ... --out OUT
    dlbench report OUT --out OUT_report
    dlbench compare OUT OUT

and prints each command's output: one row set per node in the run's table, the report and the
comparison. Both nodes share this machine's cores (Ray's CPUs are logical), and the executor runs
one timed group per node at a time, so two groups (one per node) may run at once: give each
node at most half the cores (``--cpus``) and ``--threads`` no more than that.

Usage:
    .venv/bin/python benchmarks/ray_fleet.py [--backends numpy,onnxruntime] [--threads 1]
        [--cpus 1] [--out fleet.json] [-- extra dlbench run flags]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="numpy,onnxruntime")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpus", type=int, default=1, help="logical CPUs of each node")
    p.add_argument("--out", default="dlbench-results/ray-fleet.json")
    p.add_argument("extra", nargs="*", help="more dlbench run flags (after --)")
    args = p.parse_args(argv)

    from ray.cluster_utils import Cluster

    store = 200 * 2**20
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": args.cpus,
            "labels": {"dlbench.node": "alpha"},
            "object_store_memory": store,
        },
    )
    cluster.add_node(num_cpus=args.cpus, labels={"dlbench.node": "beta"}, object_store_memory=store)
    cluster.wait_for_nodes()
    cli = [sys.executable, "-m", "dlbench.cli"]
    run = [*cli, "run", "--executor", "ray", "--ray-address", cluster.address, "--nodes", "all"]
    run += ["--backends", args.backends, "--threads", str(args.threads), "--out", args.out]
    run += ["--force", "--quiet", *args.extra]
    rc = 0
    try:
        for cmd in (
            run,
            [*cli, "report", args.out, "--out", os.path.splitext(args.out)[0] + "_report"],
            [*cli, "compare", args.out, args.out],
        ):
            print("$ dlbench " + " ".join(cmd[3:]), flush=True)
            rc = rc or subprocess.run(cmd).returncode
    finally:
        cluster.shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
