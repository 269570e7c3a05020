"""The runner's verdicts end to end (real workers): the parity tolerance actually applied, an
invalid cell recorded as invalid, and ``--resume`` retrying the cells that failed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlbench
from dlbench.analysis import parity
from dlbench.execution import results
from dlbench.execution.config import BenchmarkConfig

FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}


def test_parity_tolerance_applied_and_invalid_cell_recorded(tmp_path, monkeypatch) -> None:
    real = parity.compare
    seen = []

    def skewed(reference, out, *, tolerance):
        # the backend's outputs off by 1e-3 of their scale: 10x the default bound of 1e-4
        seen.append(tolerance)
        return real(reference, np.asarray(out, np.float64) * (1 + 1e-3), tolerance=tolerance)

    monkeypatch.setattr(parity, "compare", skewed)
    cfg = BenchmarkConfig(
        backends=["numpy"],
        scenarios=["latency"],
        batch_sizes=[1],
        # a stop rule that cannot be met (100000 calls within 0.2 s): the cell is INVALID
        stop_rule={**FAST, "min_iters": 100000, "max_time": 0.2},
        cell_timeout=60,
        parity_samples=8,
    )
    assert cfg.parity_tolerance == 1e-4
    doc = dlbench.run(cfg, out=tmp_path / "r.json")
    p = doc["backends"]["numpy"]["cpu"]["parity"]
    assert seen == [1e-4]
    assert p["tolerance"] == 1e-4
    assert p["ok"] is False and parity.failed(p)
    assert 0.9e-3 < p["max_abs_diff"] / p["output_scale"] < 1.1e-3
    assert any("PARITY FAILED for numpy" in w for w in doc["warnings"])
    [cell] = doc["cells"]
    assert cell["status"] == "invalid", cell["validity"]
    assert cell["validity"]["valid"] is False and cell["validity"]["reasons"]
    assert cell["parity_ok"] is False
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk["cells"][0]["status"] == "invalid"


def test_done_cells_are_ok_or_invalid_never_failed() -> None:
    doc = {
        "cells": [
            {"id": "a", "status": "ok"},
            {"id": "b", "status": "invalid"},
            {"id": "c", "status": "failed"},
        ]
    }
    assert results.done_cell_ids(doc) == {"a", "b"}  # --resume runs c again


@pytest.mark.slow
def test_resume_retries_failed_cells(tmp_path) -> None:
    out = tmp_path / "r.json"
    cfg = BenchmarkConfig(
        backends=["numpy"],
        scenarios=["throughput"],
        batch_sizes=[2, 4],
        stop_rule=FAST,
        cell_timeout=60,
    )
    dlbench.run(cfg, out=out)
    doc = json.loads(out.read_text())
    kept, failed = doc["cells"]
    doc["cells"][1] = results.failed_cell_record(
        {k: failed[k] for k in ("id", "backend", "device", "scenario", "batch_size")},
        "worker died from SIGKILL",
    )
    doc["status"] = "interrupted"
    results.write_atomic(out, doc)
    assert results.done_cell_ids(doc) == {kept["id"]}
    plans = []
    dlbench.run(
        cfg, out=out, resume=True, on_event=lambda k, p: plans.append(p) if k == "plan" else None
    )
    assert plans[0]["todo"] == [failed["id"]]
    final = json.loads(out.read_text())
    assert [c["status"] for c in final["cells"]] == ["ok", "ok"]
    assert final["cells"][0] == kept


def test_runner_parity_refuses_wrong_shape_and_non_finite_outputs() -> None:
    from dlbench.execution.runner import _parity

    ref = np.random.default_rng(0).standard_normal((4, 10))
    wrong_shape = _parity(parity.compare, ref, ref[:, :9].astype(np.float32), 1e-4)
    assert wrong_shape["ok"] is False and parity.failed(wrong_shape)
    assert "shape" in wrong_shape["reason"]
    nan = ref.astype(np.float32)
    nan[1, 2] = np.nan
    non_finite = _parity(parity.compare, ref, nan, 1e-4)
    assert non_finite["ok"] is False and parity.failed(non_finite)
    same = _parity(parity.compare, ref, ref.astype(np.float32), 1e-4)
    assert same["ok"] is True and same["tolerance"] == 1e-4
