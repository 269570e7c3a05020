"""Training tests: import torch before tensorflow when both are installed (the reverse can crash).

Frameworks are optional: a test that needs one skips cleanly when it is absent.
"""

import importlib.util

import pytest

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401

FRAMEWORKS = ["torch", "tensorflow", "jax"]


def framework_params() -> list:
    return [
        pytest.param(
            f,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(f) is None, reason=f"{f} is not installed"
            ),
        )
        for f in FRAMEWORKS
    ]
