"""The local executor: every cell group in a fresh worker process on this machine, one group
after another, through :func:`dlbench.execution.supervisor.supervise` (the default, unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlbench.execution.supervisor import EventHandler, Outcome, WorkerProcess


class LocalExecutor:
    """Runs groups here, in order; :meth:`supervise` is the supervisor's own."""

    name = "local"
    #: Cell groups run one after another in the calling thread.
    concurrent = False

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def expand(self, cells: list[Any], doc: dict[str, Any], dataset: Any = None) -> list[Any]:
        """The cells as they are (no node dimension here)."""
        return cells

    def run_groups(self, groups: list[tuple[Any, Any]], run_one: Callable[..., None]) -> None:
        """``run_one(job, cells)`` for each group, in order."""
        for job, cells in groups:
            run_one(job, cells)

    def supervise(
        self,
        job: dict[str, Any],
        env: dict[str, str],
        workdir: Path,
        tag: str,
        on_event: EventHandler,
        timeout: float,
        on_start: Callable[[WorkerProcess], None] | None = None,
    ) -> Outcome:
        """The supervisor's :func:`~dlbench.execution.supervisor.supervise`, looked up in the
        runner at call time (what a test patches there is what runs)."""
        from dlbench.execution import runner

        return runner.supervise(job, env, workdir, tag, on_event, timeout, on_start)

    def close(self) -> None:
        """Nothing to release."""
