"""Fixtures for the tracking tests: the report tests' realistic result documents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_NAME = "dlbench_tests_report_docs"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).parent.parent / "report" / "docs.py"
    )
    _docs = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _docs
    _spec.loader.exec_module(_docs)


@pytest.fixture
def docs() -> Any:
    return sys.modules[_NAME]


@pytest.fixture
def doc(docs) -> dict[str, Any]:
    return docs.make_document()


@pytest.fixture
def result_file(tmp_path, doc) -> Path:
    from dlbench import results

    path = tmp_path / "results.json"
    results.write_atomic(path, doc)
    return path
