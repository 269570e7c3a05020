"""CLI rough edges and the report's fairness statement (issue 22)."""

from __future__ import annotations

import copy

import pytest

from dlbench.cli.run import check_same_stop_rule
from dlbench.errors import ConfigError
from dlbench.execution import environment, results
from dlbench.execution.config import BenchmarkConfig
from dlbench.report import export, html
from dlbench.report.figures import backend_colour, backend_colours


def _resumable(tmp_path, stop_rule):
    cfg = BenchmarkConfig(backends=["numpy"], scenarios=["latency"], stop_rule=stop_rule)
    doc = results.new_document(cfg.to_dict(), environment.capture())
    path = tmp_path / "r.json"
    results.write_atomic(path, doc)
    return path, doc


def test_resume_refuses_another_stop_rule_once_cells_are_measured(tmp_path):
    path, doc = _resumable(tmp_path, {"min_iters": 50})
    check_same_stop_rule(path, {"min_iters": 7})  # nothing measured yet: any rule
    doc["cells"].append(
        {"id": "numpy/cpu/latency/bs1", "backend": "numpy", "device": "cpu",
         "scenario": "latency", "batch_size": 1, "status": "ok", "error": None}
    )  # fmt: skip
    results.write_atomic(path, doc)
    check_same_stop_rule(path, {"min_iters": 50})  # the same rule
    check_same_stop_rule(path, {"min_iters": 50, "min_time": 0.5})  # the default spelled out
    with pytest.raises(ConfigError, match="min_iters: file has 50, now 7"):
        check_same_stop_rule(path, {"min_iters": 7})


def test_cli_resume_with_another_stop_rule_is_a_usage_error(tmp_path, trust):
    path, doc = _resumable(tmp_path, {"min_iters": 50})
    doc["cells"].append(
        {"id": "numpy/cpu/latency/bs1", "backend": "numpy", "device": "cpu",
         "scenario": "latency", "batch_size": 1, "status": "ok", "error": None}
    )  # fmt: skip
    results.write_atomic(path, doc)
    proc = trust.run_cli("run", "--out", str(path), "--resume", "--min-time", "2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "dlbench: error: Expected the stop rule" in proc.stderr
    assert "min_time: file has 0.5, now 2.0" in proc.stderr


def test_fairness_statement_even_without_warnings(doc):
    doc = copy.deepcopy(doc)
    doc["warnings"] = []
    page = html.render(doc, [])
    assert "<b>Fairness</b>" in page and "Held equal for every backend" in page
    assert "2 of 2 backend(s) agree" in page  # numpy is the reference: not checked against itself
    md = export.summary_markdown(doc)
    assert "Held equal for every backend" in md and "intra-op" in md


def test_colours_fixed_per_backend_whatever_the_run_holds(docs):
    from dlbench.registry import backends

    names = sorted(backends.names())
    two = backend_colours(docs.make_document(backends=("torch", "onnxruntime")))
    four = backend_colours(docs.make_document(backends=("numpy", "jax", "torch", "onnxruntime")))
    assert two["torch"] == four["torch"] and two["onnxruntime"] == four["onnxruntime"]
    assert len({backend_colour(b) for b in names}) == len(names)  # distinct (up to 10)
    via = backend_colour("torch>onnxruntime")
    assert via != backend_colour("torch") and via == backend_colour("torch>onnxruntime")
    assert backend_colour("my_plugin") == backend_colour("my_plugin")  # stable, by name
