"""Parity: compare(), check() against the numpy reference, and the CLI table."""

from __future__ import annotations

import io
import json
from typing import Any, ClassVar

import numpy as np
import pytest
from rich.console import Console

from dlbench import zoo
from dlbench.analysis import parity
from dlbench.cli import parity as parity_cli
from dlbench.model.backend import Backend, Model
from dlbench.registry import backends as backend_registry


def test_compare_ok_and_json_safe() -> None:
    ref = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    r = parity.compare(ref, ref.astype(np.float32))
    json.dumps(r)
    assert r["ok"] and r["argmax_agreement"] == 1.0 and r["output_scale"] == 3.0
    assert set(r) >= {
        "max_abs_diff",
        "max_rel_diff",
        "output_scale",
        "argmax_agreement",
        "tolerance",
        "ok",
    }


def test_compare_flags_mismatch() -> None:
    ref = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    out = ref.copy()
    out[0, 0] += 0.01
    r = parity.compare(ref, out)
    assert not r["ok"] and r["max_abs_diff"] == pytest.approx(0.01)
    out = ref[:, [1, 0, 2]]
    assert parity.compare(ref, out)["argmax_agreement"] == 0.0


def test_compare_tolerance_is_relative_to_scale() -> None:
    ref = np.array([[1000.0, 0.0]])
    assert parity.compare(ref, ref + 0.05)["ok"]  # 0.05 <= 1e-4 * 1000
    assert not parity.compare(ref, ref + 0.2)["ok"]


def test_compare_near_tie_counts_as_agreement() -> None:
    # the second sample is not a near-tie, so the reference can rank something (informative)
    ref = np.array([[1.0, 1.0 + 1e-7], [0.0, 1.0]])
    out = np.array([[1.0 + 2e-7, 1.0 + 1e-7], [0.0, 1.0]])
    r = parity.compare(ref, out)
    assert r["argmax_agreement"] == 1.0 and r["ok"] and r["informative"]
    assert r["argmax_agreement_strict"] == 0.5 and r["argmax_near_ties"] == 1


def test_compare_near_ties_counted_and_strict_reported_separately() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 5))
    ref[1, 3] = ref[1].max() + 1.0
    ref[1, 2] = ref[1, 3] - 1e-5  # a near-tie between classes 3 and 2 in sample 1
    out = ref.copy()
    out[1, 2] = ref[1, 3] + 1e-5  # the backend breaks it the other way
    r = parity.compare(ref, out)
    assert r["ok"] and r["argmax_agreement"] == 1.0
    assert r["argmax_agreement_strict"] == 0.75 and r["argmax_near_ties"] == 1
    json.dumps(r)
    exact = parity.compare(ref, ref.astype(np.float32))
    assert exact["argmax_agreement_strict"] == 1.0 and exact["argmax_near_ties"] == 0


def test_compare_near_tie_bound_is_relative_to_output_scale() -> None:
    # scale 1000: the bound is 1e-4 * 1000 = 0.1, for values and for near-ties alike
    ref = np.array([[1000.0, 999.95], [1000.0, 999.8]])
    out = np.array([[999.95, 1000.0], [999.8, 1000.0]])
    r = parity.compare(ref, out)
    assert r["output_scale"] == 1000.0
    assert r["argmax_near_ties"] == 1  # 0.05 apart: a near-tie; 0.2 apart: a real disagreement
    assert r["argmax_agreement"] == 0.5 and r["argmax_agreement_strict"] == 0.0
    assert not r["ok"]
    # the scale is the reference's own (0.50005 here): 5e-5 apart is within 1e-4 x 0.50005
    small = np.array([[0.5, 0.5 + 5e-5]])
    r = parity.compare(small, small[:, ::-1])
    assert r["argmax_near_ties"] == 1 and r["argmax_agreement"] == 1.0
    r = parity.compare(small, small[:, ::-1], tolerance=1e-5)
    assert r["argmax_near_ties"] == 0 and r["argmax_agreement"] == 0.0


def test_compare_scalar_and_mismatched_outputs_have_the_argmax_keys() -> None:
    r = parity.compare(np.zeros((3, 1)), np.zeros((3, 1)))
    assert r["argmax_agreement"] == r["argmax_agreement_strict"] == 1.0
    assert r["argmax_near_ties"] == 0
    r = parity.compare(np.zeros((2, 3)), np.zeros((3, 2)))
    assert r["argmax_agreement_strict"] == 0.0 and r["argmax_near_ties"] == 0


def test_format_rows_shows_near_ties() -> None:
    rec = {"backend": "x", "mode": None, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": True}
    row = parity_cli.format_rows([{**rec, "argmax_agreement": 1.0, "argmax_near_ties": 2}])[0]
    assert row[4] == "100.0% (2 near-ties)"
    row = parity_cli.format_rows([{**rec, "argmax_agreement": 1.0, "argmax_near_ties": 0}])[0]
    assert row[4] == "100.0%"


def test_compare_shape_and_nan() -> None:
    assert not parity.compare(np.zeros((2, 3)), np.zeros((3, 2)))["ok"]
    r = parity.compare(np.zeros((1, 2)), np.array([[np.nan, 0.0]]))
    assert not r["ok"] and "NaN" in r["error"]
    json.dumps(r)


class _Broken(Model):
    def to_device(self, batch):
        return batch

    def forward(self, x):
        return self.inner.predict(x) + 0.1

    def sync(self, y):
        pass

    def to_numpy(self, y):
        return np.asarray(y, np.float32)


class BrokenBackend(Backend):
    name: ClassVar[str] = "broken"
    default_options: ClassVar[dict[str, Any]] = {"mode": "off-by-0.1"}

    def build(self, spec, device="cpu"):
        from dlbench.model.backend import get_backend

        m = _Broken(self, device, spec.name)
        m.inner = get_backend("numpy").build(spec)
        return m

    def versions(self):
        return {"broken": "0"}


@pytest.fixture
def broken_backend():
    backend_registry.register("broken", BrokenBackend, origin="test")
    yield "broken"
    backend_registry.unregister("broken")


def test_check_against_reference(broken_backend) -> None:
    recs = parity.check("mlp", ["numpy", broken_backend, "no_such_backend"], batch_size=16)
    by = {r["backend"]: r for r in recs}
    assert by["numpy"]["ok"] and by["numpy"]["max_abs_diff"] == 0.0
    assert not by["broken"]["ok"] and by["broken"]["max_abs_diff"] == pytest.approx(0.1, rel=1e-4)
    assert not by["no_such_backend"]["ok"] and "Unknown backend" in by["no_such_backend"]["error"]
    assert by["no_such_backend"]["argmax_near_ties"] is None
    # a constant offset of 0.1 moves no argmax: every sample agrees, strictly
    assert by["broken"]["argmax_agreement_strict"] == 1.0 and by["broken"]["argmax_near_ties"] == 0
    fp = zoo.get("mlp").fingerprint()
    assert all(r["fingerprint"] == fp for r in recs)
    json.dumps(recs)


def test_check_with_given_batch_and_options() -> None:
    pytest.importorskip("onnxruntime")
    spec = zoo.get("lenet5")
    batch = np.random.default_rng(5).standard_normal((8, 3, 32, 32)).astype(np.float32)
    recs = parity.check(
        spec,
        ["onnxruntime"],
        batch=batch,
        backend_options={"onnxruntime": {"graph_optimization_level": "basic"}},
    )
    assert recs[0]["ok"] and recs[0]["batch_size"] == 8
    assert recs[0]["settings"]["graph_optimization_level"] == "basic"


def test_cli_main_table(broken_backend) -> None:
    console = Console(file=io.StringIO(), width=140, record=True)
    assert parity_cli.cli_main("mlp", ["numpy"], 32, "cpu", console) == 0
    text = console.export_text()
    assert "max abs diff" in text and "ok" in text
    console = Console(file=io.StringIO(), width=140, record=True)
    assert parity_cli.cli_main("mlp", ["numpy", broken_backend], 32, "cpu", console) == 1
    assert "PARITY FAILED" in console.export_text()
