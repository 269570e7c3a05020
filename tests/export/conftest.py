"""Export tests: helpers (``export_helpers``); torch before tensorflow when both are installed
(the reverse can crash). A test whose framework or exporter is absent is skipped."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401  (torch must load before tensorflow when both do)

_spec = importlib.util.spec_from_file_location(
    "export_helpers", Path(__file__).with_name("helpers.py")
)
_helpers = importlib.util.module_from_spec(_spec)
sys.modules["export_helpers"] = _helpers
_spec.loader.exec_module(_helpers)
