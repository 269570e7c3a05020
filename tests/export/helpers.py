"""Helpers of the export tests (loaded as ``export_helpers`` by conftest.py)."""

from __future__ import annotations

import importlib.util

import pytest

from dlbench.export.requirements import missing

#: Stop rule for scenario runs inside tests: a handful of calls.
FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 2.0}


def need(source: str, exporter: str | None = None) -> None:
    """Skip unless ``source``, its exporter, onnx and onnxruntime are installed."""
    gone = missing(source, exporter)
    if gone:
        pytest.skip(f"export from {source} needs {', '.join(gone)}")


def need_modules(*names: str) -> None:
    gone = [n for n in names if importlib.util.find_spec(n) is None]
    if gone:
        pytest.skip(f"needs {', '.join(gone)}")
