"""The supervisor: one worker entry point for every job kind, events, deadline, exit reason."""

from __future__ import annotations

import os
import sys

import pytest

from dlbench.execution.supervisor import supervise
from dlbench.execution.worker import JOB_KINDS


def _env():
    return dict(os.environ)


def test_every_job_kind_has_one_entry_point():
    assert set(JOB_KINDS) == {"cells", "train", "export", "onnx_original"}
    from dlbench.model.manifest import load_attr

    for target in JOB_KINDS.values():
        assert callable(load_attr(target))


def test_an_unknown_job_kind_is_a_fatal_event(tmp_path):
    events = []

    def on_event(ev):
        events.append(ev)
        return ev["type"] == "fatal"

    out = supervise({"kind": "dance"}, _env(), tmp_path, "dance", on_event, timeout=120)
    assert [e["type"] for e in events] == ["fatal"]
    assert f"Expected a job kind in {sorted(JOB_KINDS)}" in events[0]["error"]
    assert "Received: 'dance'" in events[0]["error"]
    assert out.stopped and not out.finished and not out.timed_out and not out.crashed


def test_an_export_job_from_a_backend_that_cannot_export_says_why(tmp_path):
    from dlbench import zoo

    spec_path = tmp_path / "m.json"
    zoo.get("mlp").save(spec_path)
    got = []
    job = {"kind": "export", "spec_path": str(spec_path), "source": "numpy", "out": "x.onnx"}
    out = supervise(job, _env(), tmp_path, "exp", lambda ev: got.append(ev), timeout=120)
    assert got[-1]["type"] == "fatal" and "export source" in got[-1]["error"]
    assert out.crashed and out.exit_reason == "worker exited with code 1"


def test_a_silent_worker_is_killed_at_its_deadline(tmp_path):
    """A deadline far shorter than interpreter start-up: nothing is reported in time."""
    out = supervise({"kind": "cells"}, _env(), tmp_path, "slow", lambda ev: None, timeout=0.01)
    assert out.timed_out and not out.finished
    assert out.exit_reason == "worker died from SIGKILL"


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_the_handler_can_stop_a_worker(tmp_path):
    seen = []
    out = supervise(
        {"kind": "dance"}, _env(), tmp_path, "stop", lambda ev: seen.append(ev) or True, timeout=60
    )
    assert out.stopped and seen
