"""Processes and files left behind, and two writers: a killed `dlbench run` takes its worker
along, its temp folder is removed by the next run, SIGTERM is an interrupt that `--resume`
continues, and a result file has one writer at a time (a stale lock never blocks).

Through real subprocesses, the way a user or a scheduler meets them (Linux: /proc).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import dlbench
from dlbench.errors import ConfigError
from dlbench.execution import results
from dlbench.execution.supervisor import (
    EXIT_ORPHANED,
    WORKDIR_PREFIX,
    pid_alive,
    sweep_stale_workdirs,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, signals")


def test_a_killed_run_takes_its_worker_along(background, tools, tmp_path):
    out = tmp_path / "r.json"
    run = background(
        "run",
        *tools.FAST,
        "--scenario",
        "latency",
        "--min-time",
        "60",
        "--max-time",
        "120",
        "--out",
        str(out),
        "--quiet",
    )
    worker = run.worker()
    assert results.lock_holder(out) == run.proc.pid
    run.proc.send_signal(signal.SIGKILL)
    run.proc.communicate()
    tools.wait_for(lambda: tools.gone(worker), 5, f"worker {worker} to die with its parent")
    # SIGKILL leaves no chance to clean up: the next run removes what it left
    left = list(run.tmpdir.glob(f"{WORKDIR_PREFIX}{run.proc.pid}-*"))
    assert len(left) == 1 and (left[0] / "model.json").exists()
    assert sweep_stale_workdirs(run.tmpdir) == left and not left[0].exists()
    assert results.lock_path(out).exists()  # a stale lock file, which blocks nobody
    assert results.lock_holder(out) is None
    with results.locked(out):
        assert results.lock_holder(out) == os.getpid()
    assert not results.lock_path(out).exists()


def test_a_live_runs_folder_is_never_swept(tmp_path):
    mine = tmp_path / f"{WORKDIR_PREFIX}{os.getppid()}-abc"  # pytest's parent: alive
    mine.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(done.stdout)
    dead = tmp_path / f"{WORKDIR_PREFIX}{dead_pid}-xyz"
    dead.mkdir()
    (dead / "model.json").write_text("{}")
    other = tmp_path / "dlbench-something-else"
    other.mkdir()
    assert not pid_alive(dead_pid)
    assert sweep_stale_workdirs(tmp_path) == [dead]
    assert mine.exists() and other.exists() and not dead.exists()


WATCHED = textwrap.dedent(
    """
    import os, subprocess, sys, time
    code = "import sys; from dlbench.execution.supervisor import watch_parent; " \\
           "watch_parent(int(sys.argv[1]), 0.05)"
    child = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())],
                             start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def test_the_watchdog_ends_a_worker_whose_parent_died(tools):
    """Where the kernel cannot do it (not Linux): a thread sees the parent gone and exits.
    Here without PR_SET_PDEATHSIG, so only the watchdog can end the child."""
    parent = subprocess.Popen([sys.executable, "-c", WATCHED], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.3)
    assert not tools.gone(child)  # watching, not ended early
    parent.kill()
    parent.wait()
    tools.wait_for(lambda: tools.gone(child), 5, "the watched child to end")


def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    code = (
        "import sys; from dlbench.execution.supervisor import die_with_parent; "
        "print(die_with_parent(int(sys.argv[1])))"
    )
    alive = subprocess.run(
        [sys.executable, "-c", code, str(os.getpid())], capture_output=True, text=True, timeout=60
    )
    assert alive.returncode == 0 and alive.stdout.strip() == "pdeathsig", alive.stderr
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = subprocess.run(
        [sys.executable, "-c", code, done.stdout.strip()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert orphan.returncode == EXIT_ORPHANED and orphan.stdout == ""


def test_sigterm_is_an_interrupt(background, tools, tmp_path):
    out = tmp_path / "r.json"
    run = background(
        "run",
        *tools.FAST,
        "--scenario",
        "throughput",
        "--batch-sizes",
        "1,2,3",
        "--min-time",
        "0.5",
        "--out",
        str(out),
        "--quiet",
    )
    tools.wait_for(lambda: len(tools.cells_in(out)) >= 1, 120, "a first cell", run.proc)
    worker = run.worker()
    run.proc.send_signal(signal.SIGTERM)
    rc, stdout, stderr = run.finish()
    assert rc == 130, stderr
    assert "Traceback" not in stderr
    assert f"continue with dlbench run --out {out} --resume" in " ".join(stdout.split())
    tools.wait_for(lambda: tools.gone(worker), 5, "the worker to end")
    doc = results.load(out)  # valid against the schema
    assert doc["status"] == "interrupted"
    kept = {c["id"]: c for c in doc["cells"]}
    assert 1 <= len(kept) < 3 and all(c["status"] == "ok" for c in kept.values())
    assert not results.lock_path(out).exists() and not list(run.tmpdir.glob("dlbench-run-*"))

    # the file is the one Ctrl-C leaves: test_stress resumes such a file to the end


HOLDER = textwrap.dedent(
    """
    import sys, time
    from dlbench.execution import results
    with results.locked(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_a_second_writer_is_refused_and_a_stale_lock_is_not(run_cli, tmp_path, tools):
    out = tmp_path / "r.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert results.lock_holder(out) == holder.pid
        # --force: replacing is allowed, writing over a live run is not
        proc = run_cli("run", *tools.FAST, "--out", str(out), "--quiet", "--force")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"dlbench: error: Expected no other dlbench run writing {out}. Received: it is "
            f"being written by process {holder.pid}; wait for that run to end or choose "
            "another --out"
        )
        train = run_cli("train", "--epochs", "1", "--out", str(out), "--quiet")
        assert train.returncode == 2, train.stderr
        assert f"being written by process {holder.pid}" in train.stderr
        with pytest.raises(ConfigError, match=f"being written by process {holder.pid}"):
            dlbench.run({"backends": ["numpy"], "scenarios": ["latency"]}, out=out)
        assert not out.exists()  # refused before anything ran
    finally:
        holder.kill()  # SIGKILL: the lock file stays, with its dead owner's pid
        holder.wait()
    assert results.lock_path(out).read_text().strip() == str(holder.pid)
    assert results.lock_holder(out) is None  # stale: blocks nobody
    with results.locked(out):  # what every run takes first (test_write_errors checks it)
        assert results.lock_holder(out) == os.getpid()
    assert not results.lock_path(out).exists()


def test_a_lock_that_cannot_be_created_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="Expected a writable folder for the result file"):
        with results.locked(tmp_path / "file" / "r.json"):
            pass
