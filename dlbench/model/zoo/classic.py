"""Small classic classifiers: an MLP, LeNet-5 and VGG-11 with batch norm (CIFAR variant)."""

from __future__ import annotations

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder


def _finish(b: GraphBuilder, y: str, num_classes: int, softmax: bool, **meta: object) -> ModelSpec:
    if softmax:
        y = b.act(y, "softmax", name="probs")
    return b.build(
        [y],
        {
            "task": "classification",
            "num_classes": num_classes,
            "output": "probabilities" if softmax else "logits",
            **meta,
        },
    )


def mlp(
    num_classes: int = 10,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    hidden: tuple[int, ...] = (128, 64),
    softmax: bool = False,
) -> ModelSpec:
    """Multi-layer perceptron: flatten -> (dense -> relu) x len(hidden) -> dense.

    Default input ``(1, 8, 8)`` (scikit-learn digits); 17,226 parameters for 10 classes.
    """
    b = GraphBuilder("mlp", input_shape or (1, 8, 8), seed)
    x = b.flatten(b.input)
    for i, h in enumerate(hidden):
        x = b.act(b.dense(x, h, name=f"fc{i + 1}"), "relu", name=f"relu{i + 1}")
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description="MLP " + "-".join(map(str, hidden)))


def lenet5(
    num_classes: int = 10,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    softmax: bool = False,
) -> ModelSpec:
    """LeNet-5 (LeCun et al. 1998): conv5-tanh-avgpool x2, then 120-84-classes.

    Default input ``(3, 32, 32)``: 62,006 parameters for 10 classes. A 28x28 input is padded
    by 2 in the first convolution, as in the original.
    """
    shape = tuple(input_shape or (3, 32, 32))
    b = GraphBuilder("lenet5", shape, seed)
    pad = max(0, (32 - shape[1]) // 2)
    x = b.conv(b.input, 6, 5, padding=pad, bias=True, name="conv1")
    x = b.add("avg_pool", [b.act(x, "tanh", name="tanh1")], {"kernel_size": 2}, name="pool1")
    x = b.conv(x, 16, 5, padding=0, bias=True, name="conv2")
    x = b.add("avg_pool", [b.act(x, "tanh", name="tanh2")], {"kernel_size": 2}, name="pool2")
    x = b.flatten(x)
    x = b.act(b.dense(x, 120, name="fc1"), "tanh", name="tanh3")
    x = b.act(b.dense(x, 84, name="fc2"), "tanh", name="tanh4")
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description="LeNet-5")


def vgg11_bn(
    num_classes: int = 10,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    softmax: bool = False,
) -> ModelSpec:
    """VGG-11 with batch norm (Simonyan & Zisserman 2015), CIFAR variant.

    Convolutions 64-M-128-M-256-256-M-512-512-M-512-512-M (3x3, bias, BN, ReLU; M = 2x2 max
    pool), then a single linear classifier on the flattened features. Default input
    ``(3, 32, 32)``: 9,231,114 parameters for 10 classes.
    """
    b = GraphBuilder("vgg11_bn", input_shape or (3, 32, 32), seed)
    x = b.input
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    i = 0
    for v in cfg:
        if v == "M":
            x = b.add("max_pool", [x], {"kernel_size": 2, "stride": 2}, name="pool")
        else:
            i += 1
            x = b.conv(x, int(v), 3, bias=True, name=f"conv{i}")
            x = b.act(b.bn(x, name=f"bn{i}"), "relu", name=f"relu{i}")
    x = b.add("dropout", [b.flatten(x)], {"rate": 0.5}, name="dropout")
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description="VGG-11-BN (CIFAR)")
