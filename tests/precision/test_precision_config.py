"""Precision as a cell dimension: config, cells, row names, the fairness key, the edge profile,
the per-precision parity rule and the report's winner logic (framework-free, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.analysis.parity import compare
from dlbench.errors import ConfigError
from dlbench.execution import precision as P
from dlbench.execution.config import BenchmarkConfig
from dlbench.report.table import summary_rows, winner_sentences


def test_precision_list_expands_into_cells() -> None:
    cfg = BenchmarkConfig(
        backends=["numpy"], scenarios=["latency"], precision="float32,int8", intra_op_threads=1
    )
    assert cfg.precision == ["float32", "int8"]
    assert [c.id for c in cfg.cells()] == ["numpy/cpu/latency/bs1", "numpy/cpu/latency/bs1/int8"]
    assert [c.precision for c in cfg.cells()] == ["float32", "int8"]


def test_single_precision_stays_a_string() -> None:
    cfg = BenchmarkConfig(backends=["numpy"], precision=["bfloat16"], intra_op_threads=1)
    assert cfg.precision == "bfloat16" and cfg.precisions() == ["bfloat16"]


@pytest.mark.parametrize("bad", ["float8", ["float32", "float32"], [], 3, "float32,fp4"])
def test_bad_precision_is_a_clear_error(bad) -> None:
    with pytest.raises(ConfigError, match="Expected precision"):
        BenchmarkConfig(backends=["numpy"], precision=bad, intra_op_threads=1)


def test_calibration_samples_validated() -> None:
    with pytest.raises(ConfigError, match="calibration_samples"):
        BenchmarkConfig(backends=["numpy"], calibration_samples=0, intra_op_threads=1)


def test_row_names_round_trip() -> None:
    assert P.row_name("torch", "float32") == "torch"
    assert P.row_name("torch", "int8") == "torch@int8"
    assert P.split_row("torch@int8") == ("torch", "int8")
    assert P.split_row("torch") == ("torch", "float32")
    assert P.split_row("torch@other") == ("torch@other", "float32")  # not a precision


def test_fairness_key_separates_precisions() -> None:
    a = {"backend": "torch", "device": "cpu", "scenario": "latency", "batch_size": 1}
    b = {**a, "backend": "onnxruntime"}
    assert P.comparable(a, b)  # float32 when unsaid
    assert not P.comparable(a, {**b, "precision": "int8"})
    assert P.comparable({**a, "precision": "int8"}, {**b, "precision": "int8"})
    assert not P.comparable(a, {**b, "batch_size": 32})


def test_edge_profile_fills_what_is_not_given() -> None:
    out = P.apply_profile("edge", {"precision": "int8"}, given={"precision"})
    assert out["intra_op_threads"] == 1 and out["batch_sizes"] == [1]
    assert out["scenarios"] == ["latency", "accuracy"]
    assert out["precision"] == "int8"  # the flag given wins
    cfg = BenchmarkConfig.from_dict({**P.apply_profile("edge", {}, set()), "backends": ["numpy"]})
    assert cfg.precisions() == ["float32", "float16", "int8"]
    with pytest.raises(ConfigError, match="Expected a profile"):
        P.apply_profile("phone", {}, set())


def _logits(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10))
    x[np.arange(n), rng.integers(0, 10, n)] += 4.0  # a clear winner per row
    return x


def test_bfloat16_rule_accepts_rounding_and_catches_a_wrong_answer() -> None:
    ref = _logits()
    bf16 = ref * (1 + np.random.default_rng(1).uniform(-4e-3, 4e-3, ref.shape))
    ok = P.parity_verdict(compare(ref, bf16, tolerance=0.02), "bfloat16")
    assert ok["ok"] and ok["precision"] == "bfloat16" and ok["rel_to_scale"] < 0.02
    wrong = bf16.copy()
    wrong[:, 0] += 0.1 * np.abs(ref).max()  # a 10% error on one logit
    bad = P.parity_verdict(compare(ref, wrong, tolerance=0.02), "bfloat16")
    assert not bad["ok"] and "exceeds" in bad["reason"]


def test_int8_rule_is_on_the_argmax() -> None:
    ref = _logits()
    noisy = ref + np.random.default_rng(2).normal(0, 0.05, ref.shape)  # int8-like error
    assert P.parity_verdict(compare(ref, noisy, tolerance=1.0), "int8")["ok"]
    swapped = noisy.copy()
    swapped[:20] = swapped[:20, ::-1]  # 10% of the predictions changed
    bad = P.parity_verdict(compare(ref, swapped, tolerance=1.0), "int8")
    assert not bad["ok"] and "argmax agreement" in bad["reason"]


def test_shape_mismatch_fails_at_every_precision() -> None:
    ref = _logits()
    for precision in ("bfloat16", "float16", "int8"):
        verdict = P.parity_verdict(compare(ref, ref[:, :5], tolerance=1.0), precision)
        assert not verdict["ok"]


def test_calibration_indices_are_seeded() -> None:
    a = P.calibration_indices(1000, 64, seed=3)
    assert np.array_equal(a, P.calibration_indices(1000, 64, seed=3))
    assert not np.array_equal(a, P.calibration_indices(1000, 64, seed=4))
    assert len(set(a.tolist())) == 64 and np.all(np.diff(a) > 0)
    assert len(P.calibration_indices(10, 64, seed=0)) == 10  # capped by the split
    with pytest.raises(ConfigError, match="calibration_samples"):
        P.calibration_indices(10, 0, seed=0)


def _cell(backend: str, precision: str, latency: float) -> dict:
    stats = {"median": latency, "p90": latency, "p99": latency, "ci95_low": latency * 0.99}
    stats["ci95_high"] = latency * 1.01
    cell = {
        "id": f"{backend}/cpu/latency/bs1/{precision}",
        "backend": backend,
        "device": "cpu",
        "scenario": "latency",
        "batch_size": 1,
        "precision": precision,
        "status": "ok",
        "timing": {"stats": stats},
    }
    return cell


def test_rows_of_different_precision_are_labelled_and_never_ranked_together() -> None:
    doc = {
        "backends": {},
        "cells": [
            _cell("torch", "float32", 2e-3),
            _cell("onnxruntime", "float32", 1e-3),
            _cell("onnxruntime", "int8", 1e-4),  # fastest, but another precision
            {**_cell("numpy", "int8", 1.0), "status": "skipped", "skip_reason": "no int8"},
        ],
    }
    rows = {r["label"]: r for r in summary_rows(doc)}
    assert set(rows) == {"torch", "onnxruntime", "onnxruntime@int8", "numpy@int8"}
    assert rows["onnxruntime@int8"]["precision"] == "int8"
    assert rows["numpy@int8"]["skipped"] == ["latency"]
    sentences = winner_sentences(list(rows.values()))
    f32 = [s for s in sentences if s.startswith("At float32: ") and "latency (p50)" in s]
    assert f32 and "onnxruntime at" in f32[0] and "torch" in f32[0]
    assert not any("onnxruntime@int8" in s and "torch" in s for s in sentences)


def test_best_and_worst_are_ranked_among_float32_rows_only() -> None:
    from dlbench.report.table import COLUMNS, best_worst

    col = next(c for c in COLUMNS if c.key == "latency_median")
    rows = [
        {"backend": "torch", "precision": "float32", "latency_median": 2e-3},
        {"backend": "onnxruntime", "precision": "float32", "latency_median": 1e-3},
        {"backend": "onnxruntime@int8", "precision": "int8", "latency_median": 1e-4},
    ]
    assert best_worst(rows, col) == (1e-3, 2e-3)
    assert best_worst(rows[:2], col) == (1e-3, 2e-3)
