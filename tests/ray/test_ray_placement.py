"""Node choice of the Ray executor without a cluster (issue 18): selectors by label and by
custom resource, nodes too small for the threads asked for, one timed group per node unless
colocation is allowed, GPU groups only on GPU nodes, a pinned node that is gone."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from dlbench.errors import ConfigError  # noqa: E402
from dlbench.execution.config import BenchmarkConfig  # noqa: E402
from dlbench.execution.executors.ray import Node, RayExecutor  # noqa: E402


def _nodes() -> list[Node]:
    return [
        Node("a", "id-a", "10.0.0.1", {"CPU": 4.0, "site_a": 1.0}, {"dlbench.node": "c7i"}),
        Node("b", "id-b", "10.0.0.2", {"CPU": 2.0, "site_b": 2.0}, {"dlbench.node": "c7g"}),
        Node("g", "id-g", "10.0.0.3", {"CPU": 8.0, "GPU": 1.0}, {}),
    ]


def _executor(**fields) -> RayExecutor:
    fields.setdefault("intra_op_threads", 1)
    ex = RayExecutor(BenchmarkConfig(backends=["numpy"], executor="ray", **fields))
    return ex


@pytest.mark.parametrize(
    ("nodes", "threads", "chosen"),
    [
        (None, 1, ["a", "b", "g"]),
        ("all", 1, ["a", "b", "g"]),
        ("dlbench.node=c7g", 1, ["b"]),  # a label
        ("site_b=2", 1, ["b"]),  # a custom resource, at least that much
        (None, 3, ["a", "g"]),  # b has 2 CPUs: too small for 3 threads
    ],
)
def test_selectors_and_cpus(nodes, threads, chosen):
    ex = _executor(nodes=nodes, intra_op_threads=threads)
    assert [n.name for n in ex._select(_nodes())] == chosen


@pytest.mark.parametrize(
    ("nodes", "threads", "message"),
    [
        ("site_b=3", 1, "Expected an alive Ray node with label or custom resource site_b=3"),
        ("dlbench.node=m7", 1, "b: labels {'dlbench.node': 'c7g'}, resources {'site_b': 2.0}"),
        ("site_b=2", 3, "Expected a Ray node with at least 3 CPUs"),
    ],
)
def test_a_selection_that_leaves_no_node_is_refused(nodes, threads, message):
    with pytest.raises(ConfigError, match="Expected") as info:
        _executor(nodes=nodes, intra_op_threads=threads)._select(_nodes())
    assert message in str(info.value)


def test_one_timed_group_per_node_spread_least_used_first():
    ex = _executor()
    ex.nodes = {n.name: n for n in _nodes()}
    with ex.lock:
        first = ex._acquire(None, 0, [])
        second = ex._acquire(None, 0, [])
        third = ex._acquire(None, 0, [])
        assert {first.name, second.name, third.name} == {"a", "b", "g"}  # all busy now
        ex.cancelled = True  # a fourth would wait for a free node: the cancel ends the wait
        with pytest.raises(BaseException) as info:
            ex._acquire(None, 0, [])
        assert type(info.value).__name__ == "_Cancelled"
        ex.cancelled = False
        ex._release(first)
        assert ex._acquire(None, 0, []) is first


def test_colocation_allowed_shares_a_node():
    ex = _executor(allow_colocate=True)
    ex.nodes = {n.name: n for n in _nodes()[:1]}
    with ex.lock:
        assert ex._acquire(None, 0, []) is ex._acquire(None, 0, [])


def test_gpu_groups_and_gone_nodes():
    ex = _executor()
    ex.nodes = {n.name: n for n in _nodes()}
    with ex.lock:
        assert ex._acquire(None, 1, []).name == "g"  # the only node with a GPU
        ex.nodes["a"].alive = False
        assert ex._acquire("a", 0, []) == "no Ray node to run it: node a not alive"
        assert ex._acquire("b", 1, []) == "no Ray node to run it: node b not alive with a GPU"


def test_a_retry_goes_to_a_node_not_tried_yet():
    ex = _executor()
    ex.nodes = {n.name: n for n in _nodes()}
    with ex.lock:
        assert ex._acquire(None, 0, ["a", "g"]).name == "b"
