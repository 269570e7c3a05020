"""Backend tests: import torch before tensorflow when both are installed (the reverse can crash)."""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401
