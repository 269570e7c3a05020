"""Training results get a report too (issue 22): learning curves, step-time distributions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOC = Path(__file__).parent / "data/train-digits-torch-1epoch.json"


def test_training_report_through_the_cli(tmp_path, trust):
    pytest.importorskip("matplotlib")
    proc = trust.run_cli("report", str(DOC), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    trust.assert_fits_80(proc.stdout, ["torch:", "good fit"])
    page = (tmp_path / "rep/index.html").read_text()
    assert "Learning curves" in page and "Training steps" in page
    assert "<td>torch</td>" in page and "82.8%" in page  # the final test accuracy
    assert (tmp_path / "rep/learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "rep/steps.png").stat().st_size > 1000


def test_step_times_leave_the_warm_up_out():
    pytest.importorskip("matplotlib")
    from dlbench.report import training
    from dlbench.report.figures import backend_colours

    doc = json.loads(DOC.read_text())
    run = doc["backends"]["torch"]["runs"][0]
    fig = training.steps_figure(doc, backend_colours({"backends": doc["backends"], "cells": []}))
    box_data = fig.figure.axes[1].lines  # whiskers, caps, medians, fliers of the box plot
    assert box_data and training.is_training(doc)
    measured = len(run["step_times_s"]) - run["warmup_steps"]
    assert measured == run["step_time"]["n"]  # the same steps as the summary statistics
    top = max(max(line.get_ydata()) for line in box_data)
    assert top < max(run["step_times_s"]) * 1e3  # the first (compiling) step is not drawn
