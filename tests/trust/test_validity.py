"""INVALID cells marked everywhere, untrained weights said everywhere (issue 22)."""

from __future__ import annotations

import copy
import json

import pytest
from rich.console import Console

from dlbench.analysis.weights import describe_weights, reshape_plan, weights_info
from dlbench.cli.console import print_summary
from dlbench.errors import ConfigError
from dlbench.report import export
from dlbench.report.table import summary_rows, winner_sentences

REASON = "only 12 calls measured; the rule asks for at least 50 (stopped by max_time)"


def _invalid_onnxruntime(doc):
    """The fastest backend's timed cells INVALID: it must not win anything timed."""
    doc = copy.deepcopy(doc)
    for c in doc["cells"]:
        if c["backend"] == "onnxruntime" and c["scenario"] in ("latency", "throughput"):
            c["status"] = "invalid"
            c["validity"] = {"valid": False, "reasons": [REASON]}
    return doc


def test_invalid_figures_never_win_and_are_named(doc):
    sentences = winner_sentences(summary_rows(_invalid_onnxruntime(doc)))
    timed = [s for s in sentences if "latency" in s or "throughput" in s]
    assert timed and all(not s.split(":")[1].strip().startswith("onnxruntime") for s in timed)
    assert all("INVALID, left out: onnxruntime" in s for s in timed)


def test_invalid_marked_in_the_terminal_with_its_reason_and_counted(doc):
    console = Console(record=True, width=80)
    print_summary(_invalid_onnxruntime(doc), console)
    text = console.export_text()
    assert "INVALID" in text and REASON in " ".join(text.split())
    assert "15 cells: 11 ok, 4 INVALID, 0 failed" in text
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text


def test_invalid_marked_in_html_markdown_and_figures(doc):
    bad = _invalid_onnxruntime(doc)
    md = export.summary_markdown(bad)
    row = next(line for line in md.splitlines() if line.startswith("| onnxruntime"))
    timed = row.split("|")[3:6]  # p50, p99, throughput: marked, and never bold (best)
    assert all("INVALID" in t and "**" not in t for t in timed)
    assert REASON in md
    from dlbench.report import html

    page = html.render(bad, [])
    assert "4 INVALID" in page and 'class="num invalid"' in page and REASON in page
    pytest.importorskip("matplotlib")
    from dlbench.report import figures

    pts = figures._throughput_points(bad, "cpu")
    assert all(p[4] for p in pts["onnxruntime"]) and not any(p[4] for p in pts["torch"])


def test_weights_info_and_reshape():
    from dlbench import zoo

    assert describe_weights(weights_info(zoo.get("digits_cnn"))).startswith("trained on digits")
    assert describe_weights(weights_info(zoo.get("resnet20"))) == "untrained (random weights)"
    assert (
        weights_info(zoo.get("mlp"), from_zoo=False)["trained"] is None
    )  # a file that says nothing
    assert reshape_plan("resnet20", (3, 32, 32), 10) is None
    assert "re-shaped" in reshape_plan("mlp", (3, 32, 32), 10)
    with pytest.raises(ConfigError, match="--reshape-model"):
        reshape_plan("digits_cnn", (3, 32, 32), 10)
    assert "untrained" in reshape_plan("digits_cnn", (3, 32, 32), 10, allow=True)
    assert reshape_plan("digits_cnn", (3, 32, 32), 10, model_options={"pretrained": False})


def test_untrained_accuracy_is_timing_only_everywhere(doc):
    doc = copy.deepcopy(doc)
    doc["model"]["weights"] = weights_info(None)  # a zoo model without trained weights
    rows = summary_rows(doc)
    sentences = winner_sentences(rows)
    assert not any(s.startswith(("All tie on accuracy", "Best accuracy")) for s in sentences)
    assert any("untrained (random weights)" in s and "timing-only" in s for s in sentences)
    console = Console(record=True, width=80)
    print_summary(doc, console)
    text = console.export_text()
    assert "untrained (random weights)" in text and "(untrained)" in text
    assert "untrained (random weights)" in export.summary_markdown(doc)


def test_cli_invalid_untrained_reshape_and_machine_load(tmp_path, trust):
    """One real run: INVALID shown with its reason, untrained said, the machine's load recorded
    before and after the cell (a fake /proc and /sys: a busy, throttling machine)."""
    fake = tmp_path / "machine"
    (fake / "proc").mkdir(parents=True)
    (fake / "proc/loadavg").write_text("9.0 9.0 9.0 2/100 1\n")
    cpu = fake / "sys/devices/system/cpu/cpu0"
    (cpu / "cpufreq").mkdir(parents=True)
    (cpu / "cpufreq/scaling_cur_freq").write_text("2750000\n")
    out = tmp_path / "r.json"
    run = trust.run_cli(
        "run", "--backends", "numpy", "--model", "mlp", "--scenario", "latency,accuracy",
        "--accuracy-limit", "64", "--min-iters", "100000", "--min-time", "0.01",
        "--max-time", "0.05", "--threads", "1", "--out", str(out), "--quiet",
        env={"DLBENCH_MACHINE_ROOT": str(fake)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout  # INVALID exits 1 only under --strict
    doc = json.loads(out.read_text())
    assert doc["model"]["weights"]["trained"] is False
    cell = next(c for c in doc["cells"] if c["scenario"] == "latency")
    assert cell["machine"]["before"]["loadavg"] == [9.0, 9.0, 9.0]
    assert cell["machine"]["after"]["cpu_mhz"]["mean"] == 2750.0
    assert cell["machine"]["after"]["throttle"] is None  # not exposed here: said, not guessed
    assert any("machine busy before the cell" in n for n in cell["validity"]["notes"])
    assert any(w.startswith("BUSY MACHINE") for w in doc["warnings"])
    assert "BUSY MACHINE" in run.stdout  # said up front, in the terminal too
    text = run.stdout
    trust.assert_fits_80(text, ["numpy"])
    assert "mlp on digits/test: untrained (random weights)" in text
    assert "INVALID numpy/cpu/latency/bs1: only" in " ".join(text.split())
    assert "1 INVALID" in text
    refused = trust.run_cli(
        "run", "--backends", "numpy", "--model", "digits_cnn", "--dataset", "synthetic",
        "-D", "shape=[3,16,16]", "--scenario", "latency", "--out", str(tmp_path / "x.json"),
    )  # fmt: skip
    assert refused.returncode == 2 and "--reshape-model" in refused.stderr
    assert "Traceback" not in refused.stderr
