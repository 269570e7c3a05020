"""The terminal table: units, best/worst colouring, the winner sentences."""

from __future__ import annotations

from rich.console import Console

from dlbench.cli.console import print_summary
from dlbench.report.table import COLUMNS, best_worst, summary_rows, winner_sentences


def test_winner_sentences_name_the_winner_and_margin(doc):
    sentences = winner_sentences(summary_rows(doc))
    lat = next(s for s in sentences if s.startswith("Lowest latency (p50)"))
    assert "onnxruntime" in lat.split(",")[0] and "better than torch" in lat
    assert any(s.startswith("Highest throughput: onnxruntime") for s in sentences)
    assert any(s.startswith("Least memory") for s in sentences)
    assert "All tie on accuracy at 96.44%." in sentences


def test_latency_tie_when_intervals_overlap(doc):
    rows = summary_rows(doc)
    for r in rows:
        r["latency_median"], r["latency_ci"] = 1e-4, (0.9e-4, 1.1e-4)
    rows[0]["latency_median"] = 0.99e-4
    lat = next(s for s in winner_sentences(rows) if "latency (p50)" in s)
    assert "tie within noise" in lat and "intervals overlap" in lat


def test_best_and_worst_follow_the_column_direction(doc):
    rows = summary_rows(doc)
    by_key = {c.key: c for c in COLUMNS}
    best, worst = best_worst(rows, by_key["throughput"])
    assert best == max(r["throughput"] for r in rows)
    best, worst = best_worst(rows, by_key["latency_median"])
    assert best == min(r["latency_median"] for r in rows) and worst > best


def test_print_summary_colours_best_and_worst(doc):
    console = Console(record=True, width=160, force_terminal=True, color_system="truecolor")
    print_summary(doc, console)
    text = console.export_text(styles=False, clear=False)
    assert "latency p50 ↓" in text and "samples/s" in text and "µs" in text and "MiB" in text
    assert "Lowest latency (p50): onnxruntime" in text
    styled = console.export_text(styles=True)
    assert "\x1b[1;32m" in styled and "\x1b[31m" in styled  # bold green best, red worst


def test_print_summary_narrow_terminal_keeps_numbers_whole(doc):
    console = Console(record=True, width=80)
    print_summary(doc, console)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_print_summary_with_energy(docs, doc):
    edoc = docs.with_energy(doc)
    console = Console(record=True, width=250)
    print_summary(edoc, console)
    text = console.export_text()
    assert "energy ↓" in text and "J/sample" in text and "CO2 ↓" in text and "USD/1M" in text
    assert "Least energy per sample: onnxruntime" in text
    narrow = Console(record=True, width=80)
    print_summary(edoc, narrow)
    narrow_text = narrow.export_text()
    assert "…" not in narrow_text  # narrow leaves the energy columns out, not cut
    assert "Least energy per sample: onnxruntime" in narrow_text


def test_print_summary_says_why_energy_is_absent(docs, doc):
    console = Console(record=True, width=250)
    print_summary(docs.with_energy(doc, available=False, price_per_hour=None), console)
    text = console.export_text()
    assert "energy ↓" not in text
    assert "No energy figure for any timed cell: rapl: no powercap sysfs tree" in " ".join(
        text.split()
    )


def test_print_summary_without_energy_is_unchanged(doc):
    console = Console(record=True, width=250)
    print_summary(doc, console)
    text = console.export_text()
    assert "energy" not in text and "CO2" not in text
