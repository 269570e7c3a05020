"""Measurement tests: fake clocks and models (``measure_fakes``); torch before tensorflow."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401  (torch must load before tensorflow when both do)

_spec = importlib.util.spec_from_file_location(
    "measure_fakes", Path(__file__).with_name("fakes.py")
)
_fakes = importlib.util.module_from_spec(_spec)
sys.modules["measure_fakes"] = _fakes
_spec.loader.exec_module(_fakes)
