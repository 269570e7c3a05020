"""MobileNetV2 (Sandler et al. 2018), CIFAR variant."""

from __future__ import annotations

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.classic import _finish
from dlbench.model.zoo.resnet import _RESIDUAL_GAMMA

# (expansion t, output channels c, repeats n, first stride s); strides of the first two
# downsampling stages of the ImageNet net are 1 here, as is the stem, for 32x32 inputs.
_CFG = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mobilenet_v2(
    num_classes: int = 10, input_shape=None, seed: int = 0, softmax: bool = False
) -> ModelSpec:
    """MobileNetV2, CIFAR variant: stride-1 stem, inverted residuals with depthwise convs, ReLU6.

    Default input ``(3, 32, 32)``: 2,236,682 parameters for 10 classes.
    """
    b = GraphBuilder("mobilenet_v2", input_shape or (3, 32, 32), seed)
    x = b.conv(b.input, 32, 3, name="stem.conv")
    x = b.act(b.bn(x, name="stem.bn"), "relu6", name="stem.relu")
    k = 0
    for t, c, n, s in _CFG:
        for i in range(n):
            tag = f"block{k}"
            k += 1
            x = inverted_residual(b, x, t, c, s if i == 0 else 1, tag)
    x = b.conv(x, 1280, 1, padding=0, name="last.conv")
    x = b.act(b.bn(x, name="last.bn"), "relu6", name="last.relu")
    x = b.add("global_avg_pool", [x], name="pool")
    x = b.add("dropout", [x], {"rate": 0.2}, name="dropout")
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description="MobileNetV2 (CIFAR)")


def inverted_residual(b: GraphBuilder, x: str, t: int, c: int, stride: int, tag: str) -> str:
    """One MobileNetV2 block: 1x1 expand (when ``t != 1``), 3x3 depthwise, 1x1 project, and the
    residual add when the shape allows; batch norm + ReLU6 after each conv but the last."""
    cin = b.shape(x)[0]
    y = x
    if t != 1:
        y = b.conv(y, cin * t, 1, padding=0, name=f"{tag}.expand")
        y = b.act(b.bn(y, name=f"{tag}.expand_bn"), "relu6", name=f"{tag}.expand_relu")
    hidden = b.shape(y)[0]
    y = b.conv(y, hidden, 3, stride=stride, groups=hidden, name=f"{tag}.dw")
    y = b.act(b.bn(y, name=f"{tag}.dw_bn"), "relu6", name=f"{tag}.dw_relu")
    y = b.conv(y, c, 1, padding=0, name=f"{tag}.project")
    residual = stride == 1 and cin == c
    y = b.bn(y, gamma=_RESIDUAL_GAMMA if residual else (0.8, 1.2), name=f"{tag}.project_bn")
    if residual:
        y = b.add("add", [x, y], name=f"{tag}.add")
    return y
