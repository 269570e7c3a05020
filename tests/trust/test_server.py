"""The server scenario's results visible and comparable (issue 22): a common sweep of offered
rates for every backend, the summary at the highest rate all of them sustained, a figure."""

from __future__ import annotations

import copy

import pytest
from rich.console import Console

from dlbench.cli.console import print_summary
from dlbench.execution.measure import StopRule
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.server import grid_index, grid_rate
from dlbench.report.table import summary_rows, winner_sentences

US = 1000


def test_grid():
    assert [grid_rate(k) for k in range(-1, 7)] == [0.5, 1, 2, 5, 10, 20, 50, 100]
    assert [grid_index(r) for r in (20.0, 49.0, 50.0, 0.7)] == [4, 4, 5, -1]


def _server_record(trust, service_us, **kw):
    f = trust.measure_fakes()
    clock = f.FakeClock()
    rule = StopRule(min_iters=5, min_time=0.5, max_time=30.0, warmup_min_time=0.0)
    return run_scenario(
        "server",
        f.FakeModel(clock, [service_us * US]),
        f.FakeDataset(),
        stop_rule=rule,
        clock=clock,
        wait=clock.wait,
        **kw,
    )


def test_every_backend_is_driven_at_the_same_offered_rates(trust):
    fast = _server_record(trust, 100)["server"]  # capacity 10,000/s
    slow = _server_record(trust, 250)["server"]  # capacity 4,000/s
    rates = [[p["offered_rate"] for p in s["sweep"]] for s in (fast, slow)]
    assert rates[0][: len(rates[1])] == rates[1]  # the same grid, the slow one stops earlier
    assert rates[1][0] == 20.0 and rates[0][-1] > rates[1][-1]
    for s, capacity in ((fast, 10_000), (slow, 4_000)):
        ok = [p["offered_rate"] for p in s["sweep"] if p["ok"]]
        assert s["sweep_stopped"] == "overloaded" and not s["sweep"][-1]["ok"]
        assert s["max_sustained_rate"] == max(ok) <= capacity < s["sweep"][-1]["offered_rate"]
        assert all(p["p99_s"] >= p["p50_s"] >= 0.9 * 1e-6 * (1e6 / capacity) for p in s["sweep"])


def test_a_given_rate_runs_no_sweep(trust):
    s = _server_record(trust, 100, server_rate=2000.0)["server"]
    assert s["sweep"] is None and s["target_rate"] == 2000.0


def _server_doc(docs, trust):
    doc = docs.make_document(backends=("torch", "onnxruntime"), batch_sizes=(1,))
    doc["config"]["scenarios"] = ["server"]
    cells = []
    for backend, service_us in (("torch", 250), ("onnxruntime", 100)):
        rec = _server_record(trust, service_us)
        cell = copy.deepcopy(next(c for c in doc["cells"] if c["backend"] == backend))
        cell.update(rec, id=f"{backend}/cpu/server/bs1", scenario="server", batch_size=1)
        cell["status"] = "ok" if rec["validity"]["valid"] else "invalid"
        cells.append(cell)
    doc["cells"] = cells
    return doc


def test_summary_reads_the_highest_common_rate(docs, trust):
    doc = _server_doc(docs, trust)
    rows = {r["backend"]: r for r in summary_rows(doc)}
    slow_ok = max(
        p["offered_rate"]
        for c in doc["cells"]
        if c["backend"] == "torch"
        for p in c["server"]["sweep"]
        if p["ok"]
    )
    assert rows["torch"]["server_offered"] == rows["onnxruntime"]["server_offered"] == slow_ok
    assert rows["onnxruntime"]["server_max_rate"] > rows["torch"]["server_max_rate"]
    p99 = next(s for s in winner_sentences(list(rows.values())) if "server p99" in s)
    assert "offered to every backend" in p99 or "tie within noise" in p99
    console = Console(record=True, width=80)
    print_summary(doc, console)
    text = console.export_text()
    assert "srv p99" in text and "max/s" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_server_figure_plots_p99_against_offered_load(docs, trust):
    pytest.importorskip("matplotlib")
    from dlbench.report import figures

    doc = _server_doc(docs, trust)
    pts = figures.server_points(doc, "cpu")
    assert set(pts) == {"torch", "onnxruntime"}
    assert all(p["offered"] >= 20 for series in pts.values() for p in series)
    fig = figures.server_figure(doc, figures.backend_colours(doc))
    assert fig is not None and fig.name == "server" and fig.panels == 1
    assert figures.backend_colour("torch") == figures.backend_colours(doc)["torch"]
