"""``dlbench run``'s exit code is the verdict CI acts on: 1 for a failed cell, a failed parity
check or (with ``--strict``) an invalid cell; 0 otherwise, including a parity check that is
merely not informative. The run itself is replaced by a prepared result document, so each case
costs milliseconds and the exit code is the only thing under test."""

from __future__ import annotations

import copy
import os

import pytest

from dlbench.cli import main


@pytest.fixture
def run_returning(monkeypatch, tmp_path, docs):
    """``run_returning(doc, *flags)``: the exit code of ``dlbench run`` when the run gives ``doc``."""
    import dlbench.execution.runner as runner

    monkeypatch.delenv("DLBENCH_STRICT", raising=False)  # --strict sets it: undone afterwards

    def _main(doc, *flags):
        monkeypatch.setattr(runner, "run", lambda *a, **k: copy.deepcopy(doc))
        out = tmp_path / "r.json"
        return main(["run", "--backends", "numpy", "--out", str(out), "--force", "--quiet", *flags])

    return _main


@pytest.fixture
def base(docs):
    return docs.make_document(backends=("numpy", "torch"), batch_sizes=(1, 8), n=20)


def test_all_ok_exits_0(run_returning, base):
    assert run_returning(base) == 0


def test_one_failed_cell_exits_1(run_returning, docs):
    doc = docs.make_document(
        backends=("numpy", "torch"), batch_sizes=(1, 8), n=20, failed=("torch/cpu/throughput/bs8",)
    )
    assert [c["status"] for c in doc["cells"]].count("failed") == 1
    assert run_returning(doc) == 1


def test_failed_parity_exits_1(run_returning, base):
    doc = copy.deepcopy(base)
    doc["backends"]["torch"]["cpu"]["parity"].update(ok=False, informative=True, max_abs_diff=0.3)
    assert run_returning(doc) == 1


def test_failed_parity_of_an_old_record_exits_1(run_returning, base):
    doc = copy.deepcopy(base)  # written before `informative` existed: counts as informative
    doc["backends"]["torch"]["cpu"]["parity"].update(ok=False, max_abs_diff=0.3)
    assert run_returning(doc) == 1


def test_not_informative_parity_exits_0(run_returning, base):
    doc = copy.deepcopy(base)
    doc["backends"]["torch"]["cpu"]["parity"].update(
        ok=False, informative=False, reason="parity not informative: constant"
    )
    assert run_returning(doc) == 0


def test_invalid_cell_exits_1_only_with_strict(run_returning, base):
    doc = copy.deepcopy(base)
    cell = next(c for c in doc["cells"] if c["id"] == "torch/cpu/latency/bs1")
    cell.update(status="invalid", validity={"valid": False, "reasons": ["stop rule not met"]})
    assert run_returning(doc) == 0
    assert run_returning(doc, "--strict") == 1
    # --strict reaches the workers through DLBENCH_STRICT; the caller's process gets it back as
    # it was (a strict run must not make every later backend in this process strict)
    assert "DLBENCH_STRICT" not in os.environ
    os.environ["DLBENCH_STRICT"] = "0"
    try:
        assert run_returning(doc, "--strict") == 1
        assert os.environ["DLBENCH_STRICT"] == "0"
    finally:
        del os.environ["DLBENCH_STRICT"]
