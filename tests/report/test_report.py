"""The report: files, figures (panels), self-contained HTML, Markdown/CSV exports, the CLI."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
import sys

import pytest

from dlbench.errors import ConfigError
from dlbench.execution import results

pytest.importorskip("matplotlib")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_every_file_with_the_right_panels(tmp_path, docs):
    from PIL import Image

    from dlbench.report import write_report

    doc = docs.make_document(devices=("cpu", "cuda"), failed=("numpy/cpu/throughput/bs32",))
    files = write_report(doc, tmp_path / "rep")
    assert files.panels == {"latency": 2, "throughput": 2, "pareto": 1, "memory": 1}
    for name, path in files.figures.items():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        with Image.open(path) as im:
            width, height = im.size
        # One panel per device side by side: two-panel figures are wider than tall.
        assert width > 300 and height > 200
        if files.panels[name] == 2:
            assert width > 1.8 * height
    for path in (files.html, files.markdown, files.summary_csv, files.cells_csv):
        assert path.stat().st_size > 100


def test_figures_have_one_axes_per_panel(docs):
    from dlbench.report.figures import build_figures

    doc = docs.make_document(devices=("cpu", "cuda"))
    figs = {f.name: f for f in build_figures(doc)}
    assert [len(f.figure.axes) for f in figs.values()] == [2, 2, 1, 1]
    # every backend has a violin in each latency panel
    for ax in figs["latency"].figure.axes:
        assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == [
            "numpy",
            "torch",
            "onnxruntime",
        ]
    # one line per backend in each throughput panel
    for ax in figs["throughput"].figure.axes:
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
            "numpy",
            "onnxruntime",
            "torch",
        ]


def test_figures_left_out_without_data(docs):
    from dlbench.report.figures import build_figures

    doc = docs.make_document()
    doc["cells"] = [c for c in doc["cells"] if c["scenario"] != "accuracy"]
    assert [f.name for f in build_figures(doc)] == ["latency", "throughput", "memory"]


def test_pareto_front():
    from dlbench.report.figures import pareto_front

    pts = [(1.0, 90.0), (2.0, 95.0), (3.0, 94.0), (0.5, 80.0), (2.5, 95.0)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]


def test_html_is_self_contained(tmp_path, result_file):
    from dlbench.report import write_report

    files = write_report(result_file, tmp_path / "rep")
    page = files.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(files.figures) == 4
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    for section in ("Summary", "Parity", "All cells", "Settings", "Environment", "In short"):
        assert section in page
    assert "onnxruntime" in page and "Intel(R) Xeon(R)" in page


def test_html_escapes_document_text(tmp_path, doc):
    from dlbench.report import write_report

    doc["warnings"] = ["<script>alert(1)</script>"]
    page = write_report(doc, tmp_path).html.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_markdown_and_csv_exports(doc):
    from dlbench.report import export

    summary = list(csv.DictReader(io.StringIO(export.summary_csv(doc))))
    assert [r["backend"] for r in summary] == ["numpy", "torch", "onnxruntime"]
    fastest = min(summary, key=lambda r: float(r["latency_p50_s"]))
    assert fastest["backend"] == "onnxruntime"
    cells = list(csv.DictReader(io.StringIO(export.cells_csv(doc))))
    assert len(cells) == len(doc["cells"])
    md = export.summary_markdown(doc).splitlines()
    assert md[0].startswith("| backend | device | latency p50")
    assert len([line for line in md if line.startswith("|")]) == 2 + 3  # then the legend
    onnx = next(line for line in md if line.startswith("| onnxruntime"))
    assert onnx.count("**") >= 2  # best latency is bold


def test_missing_and_invalid_files_say_what_was_expected(tmp_path):
    from dlbench.report import write_report

    with pytest.raises(ConfigError, match="Expected a dlbench result file"):
        write_report(tmp_path / "nope.json", tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="Expected a dlbench result file"):
        write_report(bad, tmp_path / "out")


def test_cli_report_default_out_dir(result_file, capsys):
    from dlbench.cli import main

    assert main(["report", str(result_file)]) == 0
    out_dir = result_file.with_name("results-report")
    assert (out_dir / "index.html").exists() and (out_dir / "latency.png").exists()
    assert main(["report", str(result_file.with_name("missing.json"))]) == 2
    assert "Expected a dlbench result file" in capsys.readouterr().err


def test_report_of_a_real_multi_backend_run(tmp_path):
    """numpy + onnxruntime (+ torch when installed), really measured, then reported."""
    from dlbench.model.backend import available_backends
    from dlbench.report import write_report

    backends = [b for b in ("numpy", "onnxruntime", "torch") if b in available_backends()]
    if len(backends) < 2:
        pytest.skip("needs two installed backends")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dlbench.cli", "run", "--backends", ",".join(backends[:2]),
         "--scenario", "latency,throughput,accuracy", "--batch-sizes", "1,8", "--min-time",
         "0.05", "--min-iters", "20", "--accuracy-limit", "64", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    # a crash of the command under test is a failure, never a skip
    assert proc.returncode == 0 and out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = results.load(out)
    files = write_report(out, tmp_path / "rep")
    assert files.panels["latency"] == 1 and files.panels["throughput"] == 1
    assert set(files.figures) >= {"latency", "throughput", "memory"}
    page = files.html.read_text(encoding="utf-8")
    for b in backends[:2]:
        assert b in page
    assert page.count("data:image/png;base64,") == len(files.figures)
    assert len(doc["cells"]) == 2 * 4


def test_report_modules_import_light():
    code = (
        "import dlbench, dlbench.report, dlbench.report.table, dlbench.report.export, "
        "dlbench.analysis.compare, dlbench.cli.console, dlbench.adapters.tracking\nimport sys\n"
        "print(' '.join(m for m in ('matplotlib', 'mlflow', 'tensorboard', 'scipy', 'torch', "
        "'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
