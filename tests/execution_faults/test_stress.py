"""Stress: a run with random worker kills (SIGKILL) and one parent SIGINT, then `--resume`,
ends with every cell present exactly once, measured, in a valid file.

Kills land while the worker is in a cell (its last event is ``start``) at a random number of
finished cells, so some also land between two cells (the cell just ended): both are faults a
run must survive. 200 cells is ``slow``; the default suite runs 20 cells, one kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading

import pytest

from dlbench.execution import results

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, signals")


def _stress(background, run_cli, tools, tmp_path, n_cells, kills, min_time, seed):
    rng = random.Random(seed)
    out = tmp_path / "r.json"
    sizes = ",".join(str(b) for b in range(1, n_cells + 1))
    run = background(
        "run",
        *tools.FAST,
        "--scenario",
        "throughput",
        "--batch-sizes",
        sizes,
        "--min-time",
        str(min_time),
        "--out",
        str(out),
        "--quiet",
    )
    killed: list[int] = []
    in_flight: set[str] = set()  # cells the killed workers were in when they died

    def newest_events():
        files = sorted(run.tmpdir.glob("dlbench-run-*/*.events.jsonl"), key=os.path.getmtime)
        if not files:
            return None, []
        lines = files[-1].read_text().splitlines()
        return files[-1], [json.loads(line) for line in lines if line.endswith("}")]

    def killer() -> None:
        while len(killed) < kills and run.proc.poll() is None:
            after = rng.randint(2, max(3, n_cells // (3 * kills)))  # finished cells, this worker

            def ready_to_kill(after=after):
                path, ev = newest_events()
                ready = [e["pid"] for e in ev if e["type"] == "ready"]
                done = sum(e["type"] == "cell" for e in ev)
                if ready and ev[-1]["type"] == "start" and done >= after:
                    if ready[0] in tools.children(run.proc.pid):
                        return path, ready[0]
                return None

            path, pid = tools.wait_for(ready_to_kill, 120, "a worker in a cell to kill")
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            tools.wait_for(lambda pid=pid: tools.gone(pid), 10, "the killed worker to go")
            last = [json.loads(line) for line in path.read_text().splitlines()][-1]
            if last["type"] == "start":  # else the cell ended just before the kill
                in_flight.add(last["id"])

    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            killer()
        except BaseException as exc:  # pytest.fail in the thread: re-raised below
            errors.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    thread.join(timeout=300)
    if errors:
        raise errors[0]
    assert len(killed) == kills
    recorded = len(tools.cells_in(out))
    tools.wait_for(lambda: len(tools.cells_in(out)) >= recorded + 3, 120, "cells after the kills")
    run.proc.send_signal(signal.SIGINT)
    rc, stdout, stderr = run.finish()
    assert rc == 130, (stdout, stderr, len(tools.cells_in(out)), recorded)
    assert "Traceback" not in stderr

    doc = results.load(out)  # valid against result-v1
    assert doc["status"] == "interrupted"
    ids = [c["id"] for c in doc["cells"]]
    assert len(ids) == len(set(ids)) and len(ids) < n_cells
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    assert {c["id"] for c in failed} == in_flight  # a kill between two cells costs no cell
    assert all(c["error"].startswith("worker died from SIGKILL") for c in failed), failed
    assert all(c["status"] == "ok" for c in doc["cells"] if c not in failed)
    measured = {c["id"]: c for c in doc["cells"] if c["status"] == "ok"}

    again = run_cli("run", "--out", str(out), "--resume", "--quiet", timeout=600)
    assert again.returncode == 0, again.stderr
    final = results.load(out)
    assert final["status"] == "complete"
    final_ids = [c["id"] for c in final["cells"]]
    assert sorted(final_ids) == sorted(f"numpy/cpu/throughput/bs{b}" for b in range(1, n_cells + 1))
    assert len(final_ids) == n_cells  # each exactly once
    assert all(c["status"] == "ok" and c["timing"]["n"] >= 3 for c in final["cells"])
    for c in final["cells"]:
        if c["id"] in measured:
            assert c == measured[c["id"]]  # kept as measured, not run again
    assert not list(run.tmpdir.glob("dlbench-run-*"))
    assert not results.lock_path(out).exists()


def test_kill_a_worker_interrupt_and_resume(background, run_cli, tools, tmp_path):
    _stress(background, run_cli, tools, tmp_path, n_cells=20, kills=1, min_time=0.1, seed=0)


@pytest.mark.slow
def test_200_cells_random_kills_interrupt_and_resume(background, run_cli, tools, tmp_path):
    _stress(background, run_cli, tools, tmp_path, n_cells=200, kills=6, min_time=0.02, seed=1)
