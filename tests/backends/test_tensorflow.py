import pytest

pytest.importorskip("tensorflow")

from dlbench.testing import BackendConformance  # noqa: E402


class TestTensorFlowEager(BackendConformance):
    backend_name = "tensorflow"
    backend_options = {"mode": "eager"}


class TestTensorFlowGraph(BackendConformance):
    backend_name = "tensorflow"
    backend_options = {"mode": "graph"}


class TestTensorFlowXla(BackendConformance):
    """XLA compiles per model: ops and small models by default, all models with -m slow."""

    backend_name = "tensorflow"
    backend_options = {"mode": "xla"}
    slow_models = frozenset({"resnet56", "resnet18", "vgg11_bn", "mobilenet_v2", "vit_tiny"})


def test_tf32_disabled_and_layout_recorded() -> None:
    from dlbench import get_backend

    s = get_backend("tensorflow").settings()
    assert s["tf32"] is False and s["layout"] == "NHWC"
