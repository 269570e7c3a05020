"""The precision report: each reduced-precision row against its own backend's float32 row."""

from __future__ import annotations

import pytest

from dlbench.report.precision import markdown_table, precision_summary, trade_offs


def _cell(backend, precision, scenario, value, status="ok", **extra):
    cell = {
        "id": f"{backend}/cpu/{scenario}/{precision}",
        "backend": backend,
        "device": "cpu",
        "scenario": scenario,
        "batch_size": 1,
        "precision": precision,
        "status": status,
        **extra,
    }
    if scenario == "latency":
        cell["timing"] = {"stats": {"median": value, "ci95_low": value, "ci95_high": value}}
    elif scenario == "accuracy":
        cell["metrics"] = {"accuracy": value}
    return cell


def _doc() -> dict:
    cells = []
    for backend, precision, latency, accuracy in [
        ("onnxruntime", "float32", 2e-3, 0.970),
        ("onnxruntime", "int8", 1e-3, 0.967),
        ("torch", "float32", 8e-3, 0.970),  # another backend: never the int8 row's baseline
        ("torch", "bfloat16", 4e-3, 0.970),
    ]:
        cells += [
            _cell(backend, precision, "latency", latency),
            _cell(backend, precision, "accuracy", accuracy),
        ]
    cells.append(_cell("numpy", "int8", "latency", None, "skipped", skip_reason="no int8 here"))
    weights = {"onnxruntime": 400, "onnxruntime@int8": 100, "torch": 400, "torch@bfloat16": 400}
    backends = {name: {"cpu": {"weight_bytes": wb}} for name, wb in weights.items()}
    return {"backends": backends, "cells": cells}


def test_ratios_are_against_the_same_backend() -> None:
    recs = {(t["backend"], t["precision"]): t for t in trade_offs_of(_doc())}
    ort = recs[("onnxruntime", "int8")]
    assert ort["speedup"] == pytest.approx(2.0)  # 2 ms -> 1 ms, not torch's 8 ms
    assert ort["size_ratio"] == pytest.approx(4.0)
    assert ort["accuracy_delta_points"] == pytest.approx(-0.3)
    assert recs[("torch", "bfloat16")]["speedup"] == pytest.approx(2.0)


def trade_offs_of(doc):
    from dlbench.report.precision import precision_rows

    return trade_offs(precision_rows(doc))


def test_sentences_and_table() -> None:
    summary = precision_summary(_doc())
    assert "int8 on onnxruntime: 2.00x faster, 4.00x smaller, -0.30 points" in summary["sentences"]
    assert summary["skipped"] == [
        {"backend": "numpy", "precision": "int8", "reason": "no int8 here"}
    ]
    table = markdown_table(_doc())
    assert "| onnxruntime | int8 |" in table and "skipped: no int8 here" in table


def test_a_row_without_its_baseline_says_so() -> None:
    doc = _doc()
    doc["cells"] = [
        c for c in doc["cells"] if c["backend"] != "torch" or c["precision"] != "float32"
    ]
    del doc["backends"]["torch"]
    recs = {(t["backend"], t["precision"]): t for t in trade_offs_of(doc)}
    t = recs[("torch", "bfloat16")]
    assert t["speedup"] is None and "no float32 row of torch" in t["missing"][0]


def test_figure_has_the_pareto_front() -> None:
    pytest.importorskip("matplotlib")
    from dlbench.report.precision import precision_figure

    fig = precision_figure(_doc())
    assert fig is not None and fig.name == "precision"


def test_compare_matches_cells_of_the_same_precision_only() -> None:
    from dlbench.analysis.compare import _compare_cell, _key

    f32 = _cell("onnxruntime", "float32", "latency", 2e-3)
    int8 = _cell("onnxruntime", "int8", "latency", 1e-3)
    assert _key(f32) != _key(int8)
    assert _key({k: v for k, v in f32.items() if k != "precision"}) == _key(f32)  # old files
    skipped = _cell("onnxruntime", "int8", "latency", None, "skipped", skip_reason="gone")
    change = _compare_cell(int8, skipped, 0.05, 0.01, 0.01)
    assert change.verdict == "regression" and "skipped in b: gone" in change.notes[0]
    assert _compare_cell(skipped, skipped, 0.05, 0.01, 0.01).verdict == "skipped"
