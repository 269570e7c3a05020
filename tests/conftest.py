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


def _report_docs():
    """``tests/report/docs.py`` (realistic result documents), loaded once under one name."""
    import importlib.util

    name = "dlbench_tests_report_docs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "report" / "docs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def docs():
    """The module that builds realistic result documents (report, compare, tracking tests)."""
    return _report_docs()


@pytest.fixture
def doc(docs):
    return docs.make_document()


@pytest.fixture
def result_file(tmp_path, doc):
    from dlbench.execution import results

    path = tmp_path / "results.json"
    results.write_atomic(path, doc)
    return path
