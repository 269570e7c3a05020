"""Helpers for the fault tests: a `dlbench run` started in the background, its workers found
through /proc, and waiting on the files it writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Cells that take next to no time: digits, the small mlp, numpy, two warm-up calls and three
#: timed ones (flags such as --min-time still override it).
FAST_TOML = """
model = "mlp"
backends = ["numpy"]
[stop_rule]
warmup_min = 1
warmup_max = 2
warmup_min_time = 0.0
min_iters = 3
min_time = 0.0
max_time = 5.0
"""


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def gone(pid: int) -> bool:
    """The process has exited (no such pid, or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"dlbench ended (rc {proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def cells_in(path: Path) -> list[dict]:
    """The cells of a result file being written (atomically replaced: always whole)."""
    try:
        return json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return []


def events_of(tmpdir: Path) -> list[dict]:
    """Events of the newest worker of the run whose temp folder is under ``tmpdir``."""
    files = sorted(tmpdir.glob("dlbench-run-*/*.events.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        return []
    lines = files[-1].read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """``dlbench ARGS`` in the background, its temp folder (TMPDIR) under ``tmp_path/tmp``."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        env = {**os.environ, "COLUMNS": "200", "TMPDIR": str(self.tmpdir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlbench.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
            # the run gets Ctrl-C as a terminal would deliver it, even when pytest itself was
            # started as a background job (which inherits SIGINT ignored, and so would the run)
            preexec_fn=_default_sigint,
        )

    def worker(self, timeout: float = 120) -> int:
        """The pid of its worker once it is in the middle of a cell."""

        def in_cell():
            ev = events_of(self.tmpdir)
            kids = children(self.proc.pid)
            return kids[0] if ev and ev[-1]["type"] == "start" and kids else None

        return wait_for(in_cell, timeout, "a worker in a cell", self.proc)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture
def background(tmp_path):
    started: list[Background] = []

    def start(*args: str) -> Background:
        bg = Background(tmp_path, *args)
        started.append(bg)
        return bg

    yield start
    for bg in started:  # a failed test leaves nothing running
        for pid in children(bg.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        bg.kill()


@pytest.fixture
def tools(tmp_path):
    """The helpers above, for the test modules (conftest is not importable by name);
    ``FAST``: the flags of a run whose cells take next to no time."""
    import types

    config = tmp_path / "fast.toml"
    config.write_text(FAST_TOML)
    return types.SimpleNamespace(
        FAST=["--config", str(config)],
        children=children,
        gone=gone,
        wait_for=wait_for,
        cells_in=cells_in,
        events_of=events_of,
    )
