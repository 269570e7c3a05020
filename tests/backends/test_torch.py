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
    # mlp stays in the default suite (it pays the compiler's first start, ~18 s); the others
    # are slow
    slow_models = frozenset(
        {"resnet20", "resnet56", "resnet18", "vgg11_bn", "mobilenet_v2", "vit_tiny", "lstm"}
        | {"lenet5", "digits_cnn"}
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


def _boom_module():
    import torch

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    return Boom()


@pytest.mark.parametrize("inference_mode", [True, False])
def test_forward_runs_under_inference_mode_or_no_grad(inference_mode) -> None:
    import numpy as np
    import torch

    from dlbench import get_backend
    from dlbench.backends.torch.backend import TorchModel

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            return x * 2

    backend = get_backend("torch", inference_mode=inference_mode)
    model = TorchModel(backend, Probe(), "cpu", "probe")
    y = model.forward(model.to_device(np.ones((2, 3), np.float32)))
    assert seen == [(inference_mode, False)]
    assert y.is_inference() is inference_mode and not y.requires_grad
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()  # restored
    with pytest.raises(RuntimeError, match="boom"):
        TorchModel(backend, _boom_module(), "cpu", "boom").forward(torch.ones(1))
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()  # even on error
