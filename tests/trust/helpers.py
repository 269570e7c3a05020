"""Shared helpers of the issue-22 tests: noisy timing records, running the CLI at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

from dlbench.analysis.stats import summarize


def timing(samples: np.ndarray, batch_size: int = 1) -> dict[str, Any]:
    """A cell's ``timing`` record from raw samples, as a real run records it."""
    wall = float(samples.sum())
    return {
        "mode": "compute",
        "batch_size": batch_size,
        "n": int(samples.size),
        "wall_time_s": wall,
        "throughput": batch_size * samples.size / wall,
        "first_call_s": float(samples[0]),
        "warmup_calls": 5,
        "stop_reason": "min_iters_and_min_time",
        "stats": summarize(samples),
        "samples_s": [float(s) for s in samples],
        "warmup_samples_s": [],
    }


def set_samples(doc: dict[str, Any], cell_id: str, samples: np.ndarray) -> None:
    """Replace the samples of ``cell_id`` (and everything derived from them)."""
    cell = next(c for c in doc["cells"] if c["id"] == cell_id)
    cell["timing"] = timing(samples, cell["batch_size"])


def run_cli(*args: str, cwd: str | None = None, env: dict[str, str] | None = None):
    """``dlbench ARGS`` in a subprocess whose output is a pipe (not a TTY), ``COLUMNS=80``."""
    full = {**os.environ, "COLUMNS": "80", "TERM": "dumb", **(env or {})}
    full.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "dlbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=600,
    )


def assert_fits_80(text: str, labels: list[str]) -> None:
    """No line longer than 80 columns, nothing cut with an ellipsis, every label whole."""
    long = [line for line in text.splitlines() if len(line) > 80]
    assert not long, f"lines over 80 columns: {long[:3]}"
    assert "…" not in text and "..." not in text, text
    for label in labels:
        assert label in text, f"{label!r} cut or missing in:\n{text}"


def measure_fakes():
    """``tests/measure/fakes.py`` (a fake clock and model), loaded by path."""
    import importlib.util
    from pathlib import Path

    name = "dlbench_tests_measure_fakes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent.parent / "measure" / "fakes.py"
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]
