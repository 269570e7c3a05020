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
    "resnet20": 272_474,
    "resnet56": 855_770,
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
