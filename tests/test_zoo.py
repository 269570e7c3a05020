"""The model zoo: names, documented parameter counts, determinism, shapes, plug-ins."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import get_backend, zoo
from dlbench.errors import ConfigError, RegistryError
from dlbench.registry import models

#: documented parameter counts (trained weights; BN running stats are buffers), 10 classes
PARAMS = {
    "mlp": 17_226,
    "lenet5": 62_006,
    "resnet20": 269_722,  # He et al. option A: 0.27 M
    "resnet56": 853_018,  # 0.85 M
    "resnet18": 11_173_962,
    "vgg11_bn": 9_231_114,
    "mobilenet_v2": 2_236_682,
    "vit_tiny": 5_362_378,
    "lstm": 117_002,
}


def test_names() -> None:
    assert zoo.names()[: len(PARAMS)] == list(PARAMS)


@pytest.mark.parametrize("name", list(PARAMS))
def test_param_counts_and_shapes(name) -> None:
    spec = zoo.get(name)
    stats = spec.stats()
    assert stats["params"] == PARAMS[name]
    assert stats["macs"] > 0 and stats["flops"] >= 2 * stats["macs"]
    assert spec.output_shape == (10,) and spec.num_classes == 10
    assert spec.metadata["output"] == "logits"
    assert spec.input_shape == ((1, 8, 8) if name == "mlp" else (3, 32, 32))
    assert str(PARAMS[name]) in f"{PARAMS[name]:,}".replace(",", "")


def test_resnet20_is_about_027m() -> None:
    assert round(zoo.get("resnet20").stats()["params"] / 1e6, 2) == 0.27
    assert round(zoo.get("resnet56").stats()["params"] / 1e6, 2) == 0.85


def test_cifar_resnets_use_option_a_and_resnet18_projections() -> None:
    for name in ("resnet20", "resnet56"):
        spec = zoo.get(name)
        ops = {n.op for n in spec.nodes}
        assert {"slice", "pad"} <= ops, name
        assert not any("shortcut.conv" in n.name for n in spec.nodes), name
        assert "option-A" in spec.metadata["description"]
    r18 = zoo.get("resnet18")
    assert not {"slice", "pad"} & {n.op for n in r18.nodes}
    assert sum("shortcut.conv" in n.name for n in r18.nodes) == 3


def _torch_cifar_resnet(depth: int):
    """The standard CIFAR ResNet of He et al. (2016) with option-A shortcuts, in plain PyTorch,
    written here independently of dlbench (as in the widely used reference implementations)."""
    import torch.nn.functional as F
    from torch import nn

    class LambdaLayer(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class BasicBlock(nn.Module):
        def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(
                        x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0
                    )
                )

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self, n: int, num_classes: int = 10) -> None:
            super().__init__()
            self.in_planes = 16
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.layer1 = self._stage(16, n, 1)
            self.layer2 = self._stage(32, n, 2)
            self.layer3 = self._stage(64, n, 2)
            self.linear = nn.Linear(64, num_classes)

        def _stage(self, planes: int, n: int, stride: int) -> nn.Sequential:
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(self.in_planes, planes, s))
                self.in_planes = planes
            return nn.Sequential(*blocks)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = F.avg_pool2d(out, out.size()[3]).view(out.size(0), -1)
            return self.linear(out)

    assert (depth - 2) % 6 == 0
    return ResNet((depth - 2) // 6)


def _load_spec_weights(module, spec) -> None:
    """Copy the spec's weights into the plain PyTorch ResNet by name."""
    import torch

    def spec_name(key: str) -> str:
        key = key.replace("running_mean", "mean").replace("running_var", "var")
        if key.startswith("conv1."):
            return "stem.conv." + key[6:]
        if key.startswith("bn1."):
            return "stem.bn." + key[4:]
        if key.startswith("linear."):
            return "head." + key[7:]
        return key

    state = module.state_dict()
    used = set()
    for key in state:
        if key.endswith("num_batches_tracked"):
            continue
        name = spec_name(key)
        state[key] = torch.from_numpy(spec.params[name].copy())
        used.add(name)
    assert used == set(spec.params)
    module.load_state_dict(state)


@pytest.mark.parametrize("name, depth", [("resnet20", 20), ("resnet56", 56)])
def test_cifar_resnet_matches_an_independent_pytorch_definition(name, depth) -> None:
    torch = pytest.importorskip("torch")
    module = _torch_cifar_resnet(depth).eval()
    spec = zoo.get(name)
    assert sum(p.numel() for p in module.parameters()) == spec.stats()["params"] == PARAMS[name]
    # the same function, not only the same count: the spec's weights in the plain module
    _load_spec_weights(module, spec)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    ref = get_backend("numpy").build(spec).predict(x)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_deterministic_and_framework_independent() -> None:
    a, b = zoo.get("resnet20", seed=3), zoo.get("resnet20", seed=3)
    assert a == b
    assert zoo.get("resnet20", seed=4) != a


def test_options() -> None:
    spec = zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    assert spec.input_shape == (1, 8, 8)
    assert zoo.get("lenet5", input_shape=(1, 28, 28), num_classes=7).output_shape == (7,)
    assert zoo.get("resnet20", num_classes=100).output_shape == (100,)
    probs = zoo.get("mlp", softmax=True)
    out = get_backend("numpy").build(probs).predict(np.ones((2, 1, 8, 8), np.float32))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert zoo.get("lstm", input_shape=(1, 28, 28)).input_shape == (1, 28, 28)


def test_bad_arguments() -> None:
    with pytest.raises(RegistryError, match="Unknown model 'resnet1000'"):
        zoo.get("resnet1000")
    with pytest.raises(ConfigError, match="num_classes"):
        zoo.get("mlp", num_classes=0)
    with pytest.raises(ConfigError, match="input_shape"):
        zoo.get("mlp", input_shape=(0, 8))
    with pytest.raises(ConfigError, match="rejected its options"):
        zoo.get("mlp", depth=3)


def test_describe() -> None:
    rows = {r["name"]: r for r in zoo.describe()}
    assert rows["resnet20"]["params"] == PARAMS["resnet20"]
    assert rows["mlp"]["input_shape"] == [1, 8, 8]


def test_third_party_model() -> None:
    def tiny(num_classes=10, input_shape=None, seed=0):
        return zoo.get(
            "mlp", num_classes=num_classes, input_shape=input_shape, seed=seed, hidden=(8,)
        )

    models.register("tiny_mlp", tiny, origin="test")
    try:
        assert "tiny_mlp" in zoo.names()
        assert zoo.get("tiny_mlp").stats()["params"] == 64 * 8 + 8 + 8 * 10 + 10
    finally:
        models.unregister("tiny_mlp")
