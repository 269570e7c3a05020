"""Energy, cost and CO2 in the summary rows, the Markdown/CSV exports and the HTML page (issue 19);
documents without an ``energy`` record show exactly what they showed before."""

from __future__ import annotations

import csv
import io

import pytest

from dlbench.report import export
from dlbench.report.table import (
    COLUMNS,
    ENERGY_COLUMNS,
    cell_rows,
    energy_notes,
    fmt_co2,
    fmt_energy,
    fmt_usd,
    fmt_watts,
    summary_rows,
    visible_columns,
    winner_sentences,
)


def expected_jps(doc, backend):
    """Lowest joules per sample of ``backend``: its watts over its best throughput."""
    best = max(
        c["timing"]["throughput"]
        for c in doc["cells"]
        if c["backend"] == backend and c.get("timing")
    )
    return docs_watts()[backend] / best, best


def docs_watts():
    import sys

    return sys.modules["dlbench_tests_report_docs"].WATTS


def test_formatters():
    assert fmt_energy(0.000812) == "812 µJ" and fmt_energy(0.00341) == "3.41 mJ"
    assert fmt_energy(1.2) == "1.2 J" and fmt_energy(4500.0) == "4.5 kJ"
    assert fmt_energy(None) == "-"
    assert fmt_watts(12.34) == "12.3 W" and fmt_watts(0.85) == "850 mW"
    assert fmt_usd(0.01234) == "$0.0123" and fmt_usd(4.56) == "$4.56" and fmt_usd(1234) == "$1,234"
    assert fmt_co2(0.0123) == "12.3 mg" and fmt_co2(4.56) == "4.56 g" and fmt_co2(1200) == "1.2 kg"


def test_without_energy_nothing_changes(doc):
    rows = summary_rows(doc)
    assert visible_columns(rows) == COLUMNS
    assert not any(k in r for r in rows for k in ("energy_per_sample", "cost_per_million"))
    assert not any("energy" in s or "CO2" in s for s in winner_sentences(rows))
    header = export.summary_csv(doc).splitlines()[0].split(",")
    assert header == list(export.SUMMARY_FIELDS)
    assert export.cells_csv(doc).splitlines()[0].split(",")[-1] == "note"
    assert "energy" not in export.summary_markdown(doc)
    assert energy_notes(doc) == []


def test_summary_rows_pick_the_lowest_energy_per_sample(docs, doc):
    edoc = docs.with_energy(doc)
    rows = {r["backend"]: r for r in summary_rows(edoc)}
    for b in ("numpy", "torch", "onnxruntime"):
        jps, tput = expected_jps(edoc, b)
        assert rows[b]["energy_per_sample"] == pytest.approx(jps, rel=1e-9)
        assert rows[b]["power_watts"] == pytest.approx(docs.WATTS[b])
        assert rows[b]["cost_per_million"] == pytest.approx(3.6 / 3600 / tput * 1e6)
        assert rows[b]["co2_per_million"] == pytest.approx(jps * 1e6 / 3.6e6 * 400)
        assert rows[b]["energy_scenario"] == "throughput" and rows[b]["energy_bs"] == 32
    assert visible_columns(list(rows.values())) == COLUMNS + ENERGY_COLUMNS


def test_winner_sentence_names_the_least_energy(docs, doc):
    edoc = docs.with_energy(doc)
    sentences = winner_sentences(summary_rows(edoc))
    energy = next(s for s in sentences if s.startswith("Least energy per sample"))
    assert energy.startswith("Least energy per sample: onnxruntime")
    assert "(throughput, batch 32)" in energy
    assert any(s.startswith("Least cost per million samples: onnxruntime") for s in sentences)
    assert any(s.startswith("Least CO2 per million samples: onnxruntime") for s in sentences)
    assert not any("average power" in s for s in sentences)
    # A wrong answer is caught: make onnxruntime the hungriest and the winner changes.
    hungry = docs.with_energy(doc, watts={"onnxruntime": 500.0})
    energy = next(s for s in winner_sentences(summary_rows(hungry)) if s.startswith("Least energy"))
    assert not energy.startswith("Least energy per sample: onnxruntime")


def test_exports_carry_the_energy_columns(docs, doc):
    edoc = docs.with_energy(doc)
    summary = {r["backend"]: r for r in csv.DictReader(io.StringIO(export.summary_csv(edoc)))}
    jps, _ = expected_jps(edoc, "torch")
    assert float(summary["torch"]["energy_j_per_sample"]) == pytest.approx(jps)
    assert float(summary["torch"]["power_w"]) == pytest.approx(25.0)
    cells = {r["id"]: r for r in csv.DictReader(io.StringIO(export.cells_csv(edoc)))}
    cell = next(c for c in edoc["cells"] if c["id"] == "numpy/cpu/throughput/bs8")
    t = cell["timing"]
    assert float(cells["numpy/cpu/throughput/bs8"]["joules_per_sample"]) == pytest.approx(
        30.0 * t["wall_time_s"] / (t["n"] * 8)
    )
    assert cells["numpy/cpu/accuracy/bs256"]["joules_per_sample"] == ""  # not timed: no record
    md = export.summary_markdown(edoc)
    head = md.splitlines()[0]
    assert "| energy | power | cost | CO2 |" in head
    onnx = next(line for line in md.splitlines() if line.startswith("| onnxruntime"))
    assert f"**{fmt_energy(expected_jps(edoc, 'onnxruntime')[0])} (bs 32)**" in onnx


def test_unavailable_energy_says_why_everywhere(tmp_path, docs, doc):
    pytest.importorskip("matplotlib")
    from dlbench.report import write_report

    edoc = docs.with_energy(doc, available=False, carbon_intensity=None)
    rows = summary_rows(edoc)
    keys = [c.key for c in visible_columns(rows)]
    assert "energy_per_sample" not in keys and "cost_per_million" in keys  # cost needs no meter
    notes = energy_notes(edoc)
    assert len(notes) == 1 and notes[0].startswith("No energy figure for any timed cell")
    assert "no powercap sysfs tree" in notes[0]
    for r in cell_rows(edoc):
        if r["scenario"] != "accuracy":
            assert "no powercap sysfs tree" in r["energy_note"]
    page = write_report(edoc, tmp_path / "rep").html.read_text(encoding="utf-8")
    assert "Energy and cost" in page and "no powercap sysfs tree" in page
    assert "rapl: unavailable" in page


def test_html_shows_energy_section_and_columns(tmp_path, docs, doc):
    pytest.importorskip("matplotlib")
    from dlbench.report import write_report

    plain = write_report(doc, tmp_path / "plain").html.read_text(encoding="utf-8")
    assert "Energy and cost" not in plain and "J/sample" not in plain
    edoc = docs.with_energy(doc, baseline_watts=5.0)
    page = write_report(edoc, tmp_path / "rep").html.read_text(encoding="utf-8")
    assert "<h2>Energy and cost</h2>" in page
    assert "J/sample, lower is better" in page and "energy/sample" in page
    assert "rapl:package-0" in page and " net" in page
    assert "Least energy per sample: onnxruntime" in page
