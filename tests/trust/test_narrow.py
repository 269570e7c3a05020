"""Output readable at 80 columns and in non-TTY output (issue 22): the CLI run as a subprocess
with its output piped and COLUMNS=80; no line longer than 80, no label cut."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from rich.console import Console

from dlbench.cli.train import print_training
from dlbench.execution import results

VIA = ["torch>onnxruntime", "tensorflow>onnxruntime", "jax>onnxruntime"]
EIGHT = ["numpy", "torch", "onnxruntime", "jax", "tensorflow", *VIA]


def _eight_backends(docs):
    """A --via-onnx run: the 8 rows of torch/tensorflow/jax, onnxruntime and their ONNX exports."""
    base = docs.make_document(backends=("numpy", "torch", "onnxruntime", "jax"))
    doc = copy.deepcopy(base)
    templates = ["numpy", "torch", "onnxruntime", "jax", "torch", "torch", "onnxruntime", "jax"]
    doc["backends"], doc["cells"] = {}, []
    for name, tmpl in zip(EIGHT, templates):
        doc["backends"][name] = copy.deepcopy(base["backends"][tmpl])
        for c in base["cells"]:
            if c["backend"] == tmpl:
                cell = copy.deepcopy(c)
                cell["backend"] = name
                cell["id"] = cell["id"].replace(f"{tmpl}/", f"{name}/", 1)
                doc["cells"].append(cell)
    doc["config"]["backends"] = EIGHT[:5]
    doc["config"]["via_onnx"] = True
    return doc


def test_via_onnx_report_summary_at_80_columns(tmp_path, docs, trust):
    pytest.importorskip("matplotlib")
    path = tmp_path / "via.json"
    results.write_atomic(path, _eight_backends(docs))
    proc = trust.run_cli("report", str(path), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    trust.assert_fits_80(proc.stdout, EIGHT)
    for unit in ("µs", "/s", "MiB", "%"):
        assert unit in proc.stdout  # units stay with the numbers
    assert "Lowest latency (p50)" in proc.stdout


def test_train_table_at_80_and_120_columns():
    doc = json.loads((Path(__file__).parent / "data/train-digits-torch-1epoch.json").read_text())
    for width in (80, 120):
        console = Console(record=True, width=width)
        print_training(doc, console)
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "torch:" in text or "│ torch " in text
        assert "good fit: train 93.1%, validation 88.0%" in " ".join(text.split())
        assert "…" not in text
    wide = Console(record=True, width=240)
    print_training(doc, wide)
    assert "step ms (median)" in wide.export_text()  # a table where it fits


@pytest.mark.slow
def test_cli_train_at_80_columns(tmp_path, trust):
    pytest.importorskip("torch")
    proc = trust.run_cli(
        "train", "--backends", "torch", "--epochs", "1", "--threads", "1", "-q",
        "--out", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    trust.assert_fits_80(proc.stdout, ["torch:"])


def test_pareto_and_memory_readable_with_eight_series(docs):
    pytest.importorskip("matplotlib")
    from dlbench.report import figures

    doc = _eight_backends(docs)
    colours = figures.backend_colours(doc)
    pareto = figures.pareto_figure(doc, colours)
    (ax,) = pareto.figure.axes
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert set(EIGHT) <= legend
    assert not ax.texts  # no labels piled on tied accuracies
    memory = figures.memory_figure(doc, colours)
    labels = memory.figure.axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == EIGHT and all(t.get_rotation() == 30 for t in labels)


def test_report_settings_show_the_values_used(docs):
    from dlbench.report import html

    doc = docs.make_document()
    doc["config"]["backends"], doc["config"]["stop_rule"] = None, {"min_iters": 50}
    page = html.render(doc, [])
    assert "numpy, torch, onnxruntime (not given: every installed one)" in page
    assert "&quot;warmup_min&quot;: 3" in page  # the defaults filled in
    assert "&quot;min_iters&quot;: 50" in page
