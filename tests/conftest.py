"""Shared fixtures. Tests skip (never fail) when an optional framework is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m dlbench.cli ARGS`` in a subprocess; returns the CompletedProcess."""
    import subprocess

    def _run(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None):
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "dlbench.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd or tmp_path,
        )

    return _run
