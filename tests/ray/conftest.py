"""A real two-node Ray cluster on 127.0.0.1 (``ray.cluster_utils.Cluster``) for the executor
tests: a head node with the custom resource ``site_a`` and a second node with ``site_b``, one
logical CPU each and small object stores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
OBJECT_STORE = 80 * 2**20


def start_cluster():
    """(cluster, head node, second node), the driver connected; the probe plugin importable by
    every Ray worker (PYTHONPATH set before the nodes start)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 1,
            "resources": {"site_a": 1},
            "object_store_memory": OBJECT_STORE,
        },
    )
    second = cluster.add_node(num_cpus=1, resources={"site_b": 1}, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
    return cluster, cluster.head_node, second


def stop_cluster(cluster) -> None:
    import ray

    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster():
    cluster, head, second = start_cluster()
    try:
        yield cluster, head, second
    finally:
        stop_cluster(cluster)


@pytest.fixture
def fresh_ray_cluster():
    """A cluster of its own, for a test that removes a node."""
    cluster, head, second = start_cluster()
    try:
        yield cluster, head, second
    finally:
        stop_cluster(cluster)


@pytest.fixture
def probe_dir(tmp_path, monkeypatch):
    """Where the probe plugin of each worker writes what it imported."""
    folder = tmp_path / "probe"
    folder.mkdir()
    monkeypatch.setenv("DLBENCH_RAY_PROBE_DIR", str(folder))
    return folder
