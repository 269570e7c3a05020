"""Fixtures of the issue-22 tests (results a person can trust and read)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_NAME = "dlbench_tests_trust_helpers"


def _helpers():
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).parent / "helpers.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = mod
        spec.loader.exec_module(mod)
    return sys.modules[_NAME]


@pytest.fixture(scope="session")
def trust():
    """:mod:`tests/trust/helpers.py`: noisy timing records, the CLI at 80 columns."""
    return _helpers()
