"""ONNX import tests: helpers (``onnx_import_helpers``), networks of other libraries exported to
ONNX (``onnx_import_sources``); torch loads before tensorflow when both
are installed (the reverse can crash). Tests needing onnx, a framework or an exporter skip
cleanly without it."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401

_spec = importlib.util.spec_from_file_location(
    "onnx_import_helpers", Path(__file__).with_name("helpers.py")
)
_helpers = importlib.util.module_from_spec(_spec)
sys.modules["onnx_import_helpers"] = _helpers
_spec.loader.exec_module(_helpers)

_sources = importlib.util.spec_from_file_location(
    "onnx_import_sources", Path(__file__).with_name("sources.py")
)
_src = importlib.util.module_from_spec(_sources)
sys.modules["onnx_import_sources"] = _src
_sources.loader.exec_module(_src)
