"""benchmarks/fidelity.py: its hand-written models compute what dlbench's builds compute (with
the spec's weights mapped by name), and a model that computes something else is refused."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import dlbench

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fidelity.py"


@pytest.fixture(scope="module")
def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(**kw):
    base = {"threads": 1, "rounds": 1, "round_time": 0.0, "tolerance": 1e-4}
    return argparse.Namespace(**{**base, **kw})


def _reference(name, x):
    return dlbench.get_backend("numpy").build(dlbench.zoo.get(name)).predict(x)


@pytest.mark.parametrize(
    "name",  # the float64 reference of the convnets takes ~10 s: those run with the slow tests
    ["lstm", *(pytest.param(m, marks=pytest.mark.slow) for m in ("resnet20", "vit_tiny"))],
)
def test_hand_written_torch_equals_the_float64_reference(fidelity, name):
    pytest.importorskip("torch")
    spec = dlbench.zoo.get(name)
    prepare, call, to_numpy = fidelity.torch_contender(name, spec)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(call(prepare(x))), _reference(name, x), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("fw", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2", "vit_tiny", "lstm"])
def test_hand_written_jax_and_keras_equal_the_reference(fidelity, fw, name):
    pytest.importorskip(fw)
    spec = dlbench.zoo.get(name)
    make = fidelity.jax_contender if fw == "jax" else fidelity.keras_contender
    prepare, call, to_numpy = make(name, spec)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(call(prepare(x))), _reference(name, x), atol=1e-4)


def test_a_run_times_both_and_a_wrong_model_is_refused(fidelity, monkeypatch):
    pytest.importorskip("torch")
    rows = fidelity.worker("torch", [("lstm", [2])], _args())
    (row,) = rows
    assert row["max_abs_diff"] <= 1e-5 and row["dlbench_s"] > 0 and row["hand_s"] > 0
    assert row["ratio"] == pytest.approx(row["dlbench_s"] / row["hand_s"])  # one round
    assert row["ratio_of_medians"] == pytest.approx(row["ratio"])
    # a hand-written model with one weight off: the outputs differ, nothing is timed
    real = fidelity.torch_model

    def off_by_one_weight(name, spec):
        module = real(name, spec)
        with fidelity_torch().no_grad():
            module.head.bias[0] += 0.5
        return module

    monkeypatch.setattr(fidelity, "torch_model", off_by_one_weight)
    with pytest.raises(fidelity.Mismatch, match="differ from dlbench's"):
        fidelity.worker("torch", [("lstm", [2])], _args())


def fidelity_torch():
    import torch

    return torch


def test_a_spec_weight_without_a_place_is_refused(fidelity):
    pytest.importorskip("torch")
    spec = dlbench.zoo.get("lstm")
    spec.params["head.extra"] = np.zeros(3, np.float32)
    with pytest.raises(fidelity.Mismatch, match="has no place"):
        fidelity.torch_model("lstm", spec)


def test_the_table_marks_ratios_over_the_goal(fidelity):
    rows = [
        {"model": "resnet20", "batch": 32, "framework": "torch", "ratio": 1.2,
         "dlbench_s": 0.036, "hand_s": 0.030},
        {"model": "resnet20", "batch": 32, "framework": "jax", "ratio": 1.0,
         "dlbench_s": 0.03, "hand_s": 0.03},
    ]  # fmt: skip
    text = fidelity.table(rows, ["torch", "jax", "onnxruntime"])
    assert "| resnet20 | 32 | 1.20 **>1.05** (36.00 / 30.00) | 1.00 (30.00 / 30.00) | - |" in text
