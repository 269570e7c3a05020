"""The numbers the summary table, the winner sentences and the per-cell export present, each
recomputed from the cells of the result document they come from."""

from __future__ import annotations

import copy
import re

import pytest

from dlbench.report import table


@pytest.fixture(scope="module")
def doc():
    from tests.conftest import _report_docs

    return _report_docs().make_document(
        backends=("numpy", "torch", "onnxruntime"), batch_sizes=(1, 8, 32), n=60
    )


def _cells(doc, backend, scenario):
    return [c for c in doc["cells"] if c["backend"] == backend and c["scenario"] == scenario]


def test_summary_rows_recomputed_from_cells(doc) -> None:
    doc = copy.deepcopy(doc)
    for c in doc["cells"]:  # the last cell of each backend is not its peak
        if c["scenario"] == "accuracy":
            c["memory"]["peak_rss_bytes"] = 1000
    rows = {r["backend"]: r for r in table.summary_rows(doc)}
    assert set(rows) == {"numpy", "torch", "onnxruntime"}
    for backend, row in rows.items():
        [lat] = _cells(doc, backend, "latency")
        stats = lat["timing"]["stats"]
        assert stats["p99"] != stats["p90"]
        assert row["latency_median"] == stats["median"]
        assert row["latency_p99"] == stats["p99"]
        tput = _cells(doc, backend, "throughput")
        best = max(tput, key=lambda c: c["timing"]["throughput"])
        assert best["batch_size"] != min(c["batch_size"] for c in tput)  # not the first one
        assert row["throughput"] == best["timing"]["throughput"]
        assert row["throughput_bs"] == best["batch_size"]
        peak = max(c["memory"]["peak_rss_bytes"] for c in doc["cells"] if c["backend"] == backend)
        assert row["peak_rss_bytes"] == peak > 1000
        [acc] = _cells(doc, backend, "accuracy")
        assert row["accuracy"] == acc["metrics"]["accuracy"]


def test_failed_cells_leave_their_figures_out(docs) -> None:
    doc = docs.make_document(
        backends=("numpy", "torch"),
        batch_sizes=(1, 8),
        n=40,
        failed=("torch/cpu/latency/bs1", "torch/cpu/throughput/bs8"),
    )
    row = next(r for r in table.summary_rows(doc) if r["backend"] == "torch")
    assert row["failed"] == ["latency", "throughput"]
    assert row.get("latency_median") is None and row.get("latency_p99") is None
    [ok] = [c for c in _cells(doc, "torch", "throughput") if c["status"] == "ok"]
    assert row["throughput"] == ok["timing"]["throughput"] and row["throughput_bs"] == 1


def test_cell_rows_carry_each_cells_own_statistics(doc) -> None:
    rows = {r["id"]: r for r in table.cell_rows(doc)}
    for cell in doc["cells"]:
        row = rows[cell["id"]]
        stats = (cell.get("timing") or {}).get("stats") or {}
        for key in ("median", "p90", "p99", "mean", "iqr", "ci95_low", "ci95_high"):
            assert row[f"{key}_s"] == stats.get(key), (cell["id"], key)
        assert row["throughput_per_s"] == (cell.get("timing") or {}).get("throughput")


def test_best_and_worst_follow_the_column_direction(doc) -> None:
    rows = table.summary_rows(doc)
    cols = {c.key: c for c in table.COLUMNS}
    lat = [r["latency_median"] for r in rows]
    tput = [r["throughput"] for r in rows]
    assert table.best_worst(rows, cols["latency_median"]) == (min(lat), max(lat))
    assert table.best_worst(rows, cols["throughput"]) == (max(tput), min(tput))


def test_winner_sentence_ratio(doc) -> None:
    rows = table.summary_rows(doc)
    tput = sorted((r["throughput"], r["label"]) for r in rows)
    (v2, second), (v1, first) = tput[-2], tput[-1]
    assert v1 / v2 > 1.2  # a clear winner, not a tie
    [sentence] = [s for s in table.winner_sentences(rows) if "throughput" in s]
    assert first in sentence and second in sentence
    assert f"{v1 / v2:.2f}x" in sentence, sentence
    lat = sorted((r["latency_median"], r["label"]) for r in rows)
    (w1, fast), (w2, _) = lat[0], lat[1]
    [sentence] = [s for s in table.winner_sentences(rows) if "latency (p50)" in s]
    assert sentence.startswith("Lowest latency (p50): " + fast), sentence
    ratio = re.search(r"([0-9.]+)x better", sentence)
    if ratio:  # a latency tie is reported without a ratio
        assert float(ratio.group(1)) == pytest.approx(w2 / w1, abs=0.006)


def test_parity_text() -> None:
    assert table.parity_text(None) == "not checked"
    assert table.parity_text({"ok": True, "max_abs_diff": 2.5e-7}) == "ok (2.5e-07)"
    assert table.parity_text({"ok": False, "informative": True, "max_abs_diff": 0.3}) == "MISMATCH"
    assert table.parity_text({"ok": False, "max_abs_diff": 0.3}) == "MISMATCH"  # an old record
    assert (
        table.parity_text({"ok": False, "informative": False, "reason": "constant"})
        == "not informative"
    )
