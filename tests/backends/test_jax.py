import pytest

pytest.importorskip("jax")

from dlbench.testing import BackendConformance  # noqa: E402


class TestJaxJit(BackendConformance):
    backend_name = "jax"
    backend_options = {"mode": "jit"}
    slow_models = frozenset({"resnet56", "resnet18"})


class TestJaxEager(BackendConformance):
    backend_name = "jax"
    backend_options = {"mode": "eager"}
    slow_models = frozenset({"resnet56", "resnet18", "mobilenet_v2"})
