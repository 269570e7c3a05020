import pytest

pytest.importorskip("torch")

from dlbench.testing import BackendConformance  # noqa: E402


class TestTorchEager(BackendConformance):
    backend_name = "torch"
    backend_options = {"mode": "eager"}


class TestTorchChannelsLast(BackendConformance):
    backend_name = "torch"
    backend_options = {"mode": "eager", "channels_last": True}
    slow_models = frozenset({"resnet56", "resnet18", "vgg11_bn", "vit_tiny"})


class TestTorchCompile(BackendConformance):
    """torch.compile takes seconds per model: small models by default, all with -m slow."""

    backend_name = "torch"
    backend_options = {"mode": "compile"}
    slow_ops = True
    slow_models = frozenset(
        {"resnet20", "resnet56", "resnet18", "vgg11_bn", "mobilenet_v2", "vit_tiny", "lstm"}
    )


def test_module_is_a_real_graph_module() -> None:
    import torch

    from dlbench import zoo
    from dlbench.backends.torch.backend import build_module

    gm = build_module(zoo.get("resnet20"))
    assert isinstance(gm, torch.fx.GraphModule)
    assert "def forward" in gm.code
    assert sum(p.numel() for p in gm.parameters()) == zoo.get("resnet20").stats()["params"]


def test_tf32_disabled_for_float32() -> None:
    import torch

    from dlbench import get_backend

    s = get_backend("torch").settings()
    assert s["allow_tf32_matmul"] is False and s["allow_tf32_cudnn"] is False
    assert torch.get_float32_matmul_precision() == "highest"
