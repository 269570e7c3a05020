"""A run with a precision sweep, end to end through the runner and its workers: rows per
precision, an unsupported precision skipped with its reason (not failed), int8 calibrated and
checked by its own parity rule, the trade-off in the result, the result schema."""

from __future__ import annotations

import pytest

import dlbench
from dlbench.execution import results

pytest.importorskip("onnxruntime")

FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}


def test_precision_sweep_on_onnxruntime(tmp_path) -> None:
    cfg = {
        "backends": ["onnxruntime"],
        "precision": ["float32", "bfloat16", "int8"],
        "scenarios": ["accuracy"],
        "accuracy_limit": 64,
        "intra_op_threads": 1,
        "calibration_samples": 32,
        "stop_rule": FAST,
    }
    doc = dlbench.run(cfg, out=tmp_path / "r.json")
    results.check_document(doc)  # the schema knows skipped cells and precisions
    status = {c["id"]: (c["status"], c.get("skip_reason")) for c in doc["cells"]}
    assert status["onnxruntime/cpu/accuracy/bs256"] == ("ok", None)
    assert status["onnxruntime/cpu/accuracy/bs256/int8"] == ("ok", None)
    st, why = status["onnxruntime/cpu/accuracy/bs256/bfloat16"]
    assert st == "skipped" and "no bfloat16 kernels" in why
    assert not [c for c in doc["cells"] if c["status"] == "failed"]

    int8 = doc["backends"]["onnxruntime@int8"]["cpu"]
    assert int8["settings"]["precision"] == "int8"
    assert int8["settings"]["calibration"] == {"split": "train", "samples": 32, "seed": 0}
    assert int8["parity"]["precision"] == "int8" and int8["parity"]["ok"]
    assert int8["weight_bytes"] < doc["backends"]["onnxruntime"]["cpu"]["weight_bytes"] / 3
    assert doc["backends"]["onnxruntime@bfloat16"]["cpu"]["status"] == "skipped"
    assert any(s.startswith("int8 on onnxruntime:") for s in doc["precision"]["sentences"])
    assert not any("Settings differ" in w for w in doc["warnings"])  # compared per precision


def test_a_backend_without_a_precision_module_is_skipped_with_the_reason() -> None:
    from dlbench import zoo
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.precision import UnsupportedPrecision
    from dlbench.execution.worker import _build_at_precision

    config = BenchmarkConfig(backends=["numpy"], precision="int8")
    with pytest.raises(UnsupportedPrecision, match="no precision module"):
        _build_at_precision(config, "numpy", zoo.get("mlp"), "cpu", "int8")
    _, model, _ = _build_at_precision(config, "numpy", zoo.get("mlp"), "cpu", "float32")
    assert model.settings()["backend"] == "numpy"


def test_a_backend_that_ignores_the_precision_is_caught() -> None:
    """A precision module whose model does not report ``precision_in_force`` (it ran float32
    while asked for bfloat16) is skipped, never timed as what it is not."""
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.precision import UnsupportedPrecision
    from dlbench.execution.worker import _precision_settings

    config = BenchmarkConfig(backends=["numpy"], precision="bfloat16", intra_op_threads=1)
    with pytest.raises(UnsupportedPrecision, match="does not implement it"):
        _precision_settings(config, "x", "cpu", "bfloat16", {"precision": "bfloat16"})
    ok = _precision_settings(config, "x", "cpu", "bfloat16", {"precision_in_force": "bfloat16"})
    assert ok == {"precision": "bfloat16"}
