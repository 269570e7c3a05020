"""The Ray executor on a real two-node cluster (issue 18), from the CLI: ``--nodes all`` gives
one row set per node in the result, the report table and ``compare``; every group ran in a
fresh process pinned to its node, one group at a time per node, its worker importing only its
own framework; a node selector that matches nothing is refused before anything runs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")
pytest.importorskip("onnxruntime")

FAST = [
    "--backends",
    "numpy,onnxruntime",
    "--scenario",
    "latency",
    "--threads",
    "1",
    "--min-iters",
    "5",
    "--min-time",
    "0.05",
    "--max-time",
    "1",
    "--quiet",
]


def _node_of(doc: dict, resource: str) -> str:
    nodes = doc["environment"]["executor"]["nodes"]
    return next(name for name, n in nodes.items() if resource in n["resources"])


def test_fleet_run_from_the_cli_one_row_set_per_node(ray_cluster, probe_dir, tmp_path):
    from dlbench.cli import main
    from dlbench.execution import results
    from dlbench.report.table import summary_rows

    out = tmp_path / "fleet.json"
    rc = main(
        ["run", *FAST, "--executor", "ray", "--nodes", "all", "--out", str(out)]
        + ["--plugin", "ray_probe"]
    )
    assert rc == 0
    doc = results.load(out)
    a, b = _node_of(doc, "site_a"), _node_of(doc, "site_b")
    assert a != b
    assert {c["id"] for c in doc["cells"]} == {
        f"{backend}/cpu@{node}/latency/bs1"
        for backend in ("numpy", "onnxruntime")
        for node in (a, b)
    }
    for cell in doc["cells"]:
        assert cell["status"] == "ok", cell["error"]
        assert cell["device"] == f"cpu@{cell['node']}"  # run where its device says
    # each node's environment is recorded, and each node is a row set of its own
    for name in (a, b):
        env = doc["environment"]["executor"]["nodes"][name]["environment"]
        assert env["python"]["version"]
    rows = summary_rows(doc)
    assert {(r["backend"], r["device"]) for r in rows} == {
        (backend, f"cpu@{node}") for backend in ("numpy", "onnxruntime") for node in (a, b)
    }
    assert {r["label"] for r in rows} == {
        f"{backend}/cpu@{node}" for backend in ("numpy", "onnxruntime") for node in (a, b)
    }
    from dlbench.analysis.compare import compare

    cmp = compare(doc, doc)  # cells matched node by node
    assert {c.device for c in cmp.changes} == {f"cpu@{a}", f"cpu@{b}"}
    assert len(cmp.changes) == 4 and not cmp.only_in_a

    # placement and isolation: 4 attempts, each on its node, each a fresh Ray worker process,
    # never two groups at once on one node
    groups = doc["environment"]["executor"]["groups"]
    attempts = [(g, a_) for g, items in groups.items() for a_ in items]
    assert len(attempts) == 4
    for group, attempt in attempts:
        assert group.endswith(f"@{attempt['node']}")
        assert attempt["lost"] is None
    assert len({a_["ray_worker_pid"] for _, a_ in attempts}) == 4
    for node in (a, b):
        spans = sorted((x["started"], x["finished"]) for _, x in attempts if x["node"] == node)
        assert len(spans) == 2 and spans[0][1] <= spans[1][0]
    probes = [json.loads(p.read_text()) for p in probe_dir.glob("*.json")]
    by_pid = {p["pid"]: p for p in probes}
    worker_pids = {x["worker_pid"] for _, x in attempts}
    assert worker_pids <= set(by_pid)
    for group, attempt in attempts:
        probe = by_pid[attempt["worker_pid"]]
        assert probe["ppid"] == attempt["ray_worker_pid"]  # started by its own Ray task
        own = ["onnxruntime"] if group.startswith("onnxruntime") else []
        assert probe["frameworks"] == own
        assert probe["ray"] is False
        assert probe["omp"] == probe["mkl"] == "1"  # dlbench's thread environment
        assert probe["shipped"]  # the data came through the object store


def test_a_node_selector_that_matches_nothing_is_refused(ray_cluster, tmp_path):
    import dlbench
    from dlbench.errors import ConfigError

    with pytest.raises(ConfigError, match="Expected an alive Ray node with label or custom"):
        dlbench.run(
            {"backends": ["numpy"], "scenarios": ["latency"], "intra_op_threads": 1}
            | {"executor": "ray", "nodes": "site_c=1"},
            out=tmp_path / "r.json",
        )
    with pytest.raises(ConfigError, match="at least 2 CPUs"):
        dlbench.run(
            {"backends": ["numpy"], "scenarios": ["latency"], "intra_op_threads": 2}
            | {"executor": "ray"},
            out=tmp_path / "r2.json",
        )


@pytest.mark.slow
def test_a_resource_selector_keeps_only_its_nodes(ray_cluster, tmp_path):
    import dlbench

    config = {
        "backends": ["numpy", "onnxruntime"],
        "scenarios": ["latency"],
        "intra_op_threads": 1,
        "stop_rule": {"min_iters": 5, "min_time": 0.05, "max_time": 1},
        "executor": "ray",
        "nodes": "site_b=1",
    }
    doc = dlbench.run(config, out=tmp_path / "sel.json")
    b = _node_of(doc, "site_b")
    assert list(doc["environment"]["executor"]["nodes"]) == [b]
    assert [(c["node"], c["status"]) for c in doc["cells"]] == [(b, "ok"), (b, "ok")]
    assert {c["device"] for c in doc["cells"]} == {"cpu"}  # not a fleet: no node in the id
    spans = sorted(
        (a["started"], a["finished"])
        for items in doc["environment"]["executor"]["groups"].values()
        for a in items
    )
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]  # one timed group at a time


@pytest.mark.slow
def test_a_group_that_cannot_start_fails_with_the_reason(ray_cluster, tmp_path):
    """Other work holds the only selected node's CPU: the group's task stays pending, and after
    the start deadline (``cell_timeout``) its cells fail saying so, instead of a hung run."""
    import time

    import ray

    import dlbench

    @ray.remote(num_cpus=1, resources={"site_b": 1})
    def hold(seconds: float) -> None:
        time.sleep(seconds)

    blocker = hold.remote(120)
    try:
        config = {
            "backends": ["numpy"],
            "scenarios": ["latency"],
            "intra_op_threads": 1,
            "cell_timeout": 5,
            "executor": "ray",
            "nodes": "site_b=1",
        }
        doc = dlbench.run(config, out=tmp_path / "pending.json")
    finally:
        ray.cancel(blocker, force=True)
    (cell,) = doc["cells"]
    assert cell["status"] == "failed"
    assert "did not start on node" in cell["error"] and "within 5 s" in cell["error"]
