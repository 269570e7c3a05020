"""The supervisor: one worker process per job, its events, its deadline, its exit reason.

Every job of every kind (a benchmark cell group, a training run, an ONNX export) runs as
``python -m dlbench.execution.worker JOB.json`` in a fresh process started here, with the
environment the backends' manifests ask for. The worker appends one JSON line per event to the
job's event file (so everything it reported survives if it dies); :func:`supervise` tails that
file, hands each event to the caller, and kills the process when it stops reporting for longer
than its ``timeout`` (the deadline restarts at every event) or when the caller says stop.

Example:
    >>> from dlbench.execution.supervisor import supervise  # doctest: +SKIP
    >>> outcome = supervise({"kind": "export", ...}, env, workdir, "torch-export",
    ...                     on_event=print, timeout=600)  # doctest: +SKIP
    >>> outcome.finished, outcome.reason  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The one worker entry point, for every job kind.
WORKER_MODULE = "dlbench.execution.worker"
POLL_S = 0.05
STDERR_TAIL = 2000

#: Called with each event; return True to stop the worker (e.g. after a fatal event).
EventHandler = Callable[[dict[str, Any]], "bool | None"]

#: A run's temporary folder is named ``dlbench-run-<pid>-XXXX`` after the process that owns it.
WORKDIR_PREFIX = "dlbench-run-"
#: Exit code of a worker that found its supervisor gone.
EXIT_ORPHANED = 3
#: Seconds between two looks at the parent, where the kernel cannot watch it (not Linux).
WATCHDOG_S = 0.5


class WorkerProcess:
    """One worker process (``python -m MODULE JOB.json``) and the events it has written so far.

    The job gets an ``events`` path: the worker appends one JSON line per event there, so
    everything it reported survives if it dies.
    """

    def __init__(
        self,
        job: dict[str, Any],
        env: dict[str, str],
        workdir: Path,
        tag: str,
        module: str = WORKER_MODULE,
    ) -> None:
        self.events_path = workdir / f"{tag}.events.jsonl"
        self.stderr_path = workdir / f"{tag}.stderr.log"
        job = {**job, "events": str(self.events_path), "parent_pid": os.getpid()}
        job_path = workdir / f"{tag}.job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        self._offset = 0
        self._partial = ""
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(job_path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            start_new_session=True,
        )

    def new_events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        with open(self.events_path, encoding="utf-8") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the rest
        return [json.loads(line) for line in lines if line.strip()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()

    def exit_reason(self) -> str:
        code = self.proc.returncode
        if code is None:
            return "worker still running"
        if code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            return f"worker died from {sig}"
        return f"worker exited with code {code}"

    def stderr_tail(self) -> str:
        self._stderr.flush()
        try:
            data = self.stderr_path.read_bytes()[-STDERR_TAIL:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def finish(self) -> None:
        self._stderr.close()


@dataclass
class Outcome:
    """How a supervised worker ended.

    Attributes:
        finished: It reported ``done``.
        stopped: The event handler asked to stop (the worker was then killed).
        timed_out: It reported nothing for ``timeout`` seconds and was killed.
        exit_reason: ``worker exited with code N`` / ``worker died from SIGKILL``.
        stderr_tail: The end of its output, for the error message.
    """

    finished: bool = False
    stopped: bool = False
    timed_out: bool = False
    exit_reason: str = ""
    stderr_tail: str = ""

    @property
    def crashed(self) -> bool:
        """It ended without ``done``, on its own (not stopped, not timed out)."""
        return not (self.finished or self.stopped or self.timed_out)

    def reason(self, limit: int = 500) -> str:
        """``exit_reason``, with the last output when there is any."""
        tail = self.stderr_tail[-limit:] if limit else ""
        return self.exit_reason + (f"; last output: {tail}" if tail else "")


def supervise(
    job: dict[str, Any],
    env: dict[str, str],
    workdir: Path,
    tag: str,
    on_event: EventHandler,
    timeout: float,
    on_start: Callable[[WorkerProcess], None] | None = None,
    poll_s: float = POLL_S,
) -> Outcome:
    """Run ``job`` in a fresh worker and feed its events to ``on_event`` until it ends.

    The worker ends when it reports ``done`` (it is then waited for), when ``on_event``
    returns True, when it exits, or when ``timeout`` seconds pass without an event (it is then
    killed, with its process group). Interrupts (Ctrl-C) kill it and propagate.
    """
    worker = WorkerProcess(job, env, workdir, tag)
    if on_start is not None:
        on_start(worker)
    out = Outcome()
    deadline = time.monotonic() + timeout
    try:
        while True:
            exited = worker.proc.poll() is not None  # checked before reading: no event lost
            for ev in worker.new_events():
                deadline = time.monotonic() + timeout
                if ev.get("type") == "done":
                    out.finished = True
                if on_event(ev):
                    out.stopped = True
            if out.finished or out.stopped or exited:
                break
            if time.monotonic() > deadline:
                out.timed_out = True
                break
            time.sleep(poll_s)
    except BaseException:
        worker.kill()
        worker.finish()
        raise
    if out.finished and not out.stopped:
        worker.proc.wait()
    else:
        worker.kill()
    out.exit_reason = worker.exit_reason()
    if not out.finished:
        out.stderr_tail = worker.stderr_tail()
    worker.finish()
    return out


# -- workers die with their parent ---------------------------------------------------------------


def die_with_parent(parent_pid: int | None) -> str:
    """In a worker: end this process as soon as its supervisor ``parent_pid`` is gone.

    The workers run in a session of their own (``start_new_session``), so a signal to the
    parent's process group never reaches them; without this, a supervisor killed by SIGKILL
    would leave its worker computing as an orphan and skew the next benchmark on the machine.
    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``), even in the
    middle of a framework's C code; elsewhere (POSIX) a daemon thread looks every
    :data:`WATCHDOG_S` seconds and exits when the parent is gone. A parent that died before
    this ran is caught by the check that follows. Returns how the worker watches:
    ``"pdeathsig"``, ``"watchdog"`` or ``"none"`` (no parent given, or Windows).
    """
    if not parent_pid or sys.platform == "win32":
        return "none"
    how = "pdeathsig" if _set_pdeathsig() else "watchdog"
    if how == "watchdog":
        threading.Thread(
            target=watch_parent, args=(parent_pid,), daemon=True, name="dlbench-parent-watchdog"
        ).start()
    if not pid_alive(parent_pid) or (os.getppid() == 1 and parent_pid != 1):
        os._exit(EXIT_ORPHANED)  # the parent died before the watch was in place
    return how


def _set_pdeathsig() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is impossible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        return libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, interval: float = WATCHDOG_S) -> None:
    """Loop until the parent is gone (re-parented, or no such process), then ``os._exit``."""
    first_ppid = os.getppid()
    while os.getppid() == first_ppid and pid_alive(parent_pid):
        time.sleep(interval)
    os._exit(EXIT_ORPHANED)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX; a zombie counts as alive until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


# -- the run's temporary folder --------------------------------------------------------------------


@contextlib.contextmanager
def run_workdir() -> Iterator[Path]:
    """A temporary folder for one run's jobs (spec, events, parity outputs, exported models),
    removed when the run ends, and first the folders of earlier runs that could not remove
    their own (killed by SIGKILL: nothing runs after it) -- see :func:`sweep_stale_workdirs`."""
    sweep_stale_workdirs()
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        yield Path(tmp)


def sweep_stale_workdirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the ``dlbench-run-<pid>-*`` folders in ``root`` (default: the temp folder) whose
    process no longer exists and that belong to this user; returns those removed.

    A folder whose pid is alive is kept, whatever that process is now (a reused pid only
    delays the clean-up to a later run, it never removes a live run's folder)."""
    if sys.platform == "win32":
        return []
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        pid_text = path.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
            continue
        if pid_alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed
