"""ResNets for CIFAR: He et al. (2016) ResNet-20/56 and the CIFAR variant of ResNet-18.

ResNet-20/56 follow the paper's CIFAR-10 models (section 4.2) with shortcut option A: identity
shortcuts, and where a stage halves the resolution and doubles the width, the shortcut takes
every other pixel (``x[:, :, ::2, ::2]``) and pads the new channels with zeros (``planes // 4``
on each side, as the widely used reference implementations do), so shortcuts add no parameters.
ResNet-18 (an ImageNet design) keeps its 1x1 conv + BN projection shortcuts (option B).
"""

from __future__ import annotations

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.classic import _finish

#: gamma range of the last BN of each residual branch: keeps an untrained deep net's activations
#: bounded (the same idea as zero-init-residual, without making the branch vanish).
_RESIDUAL_GAMMA = (0.1, 0.3)


def _basic_block(b: GraphBuilder, x: str, planes: int, stride: int, tag: str, shortcut: str) -> str:
    cin = b.shape(x)[0]
    y = b.conv(x, planes, 3, stride=stride, name=f"{tag}.conv1")
    y = b.act(b.bn(y, name=f"{tag}.bn1"), "relu", name=f"{tag}.relu1")
    y = b.conv(y, planes, 3, name=f"{tag}.conv2")
    y = b.bn(y, gamma=_RESIDUAL_GAMMA, name=f"{tag}.bn2")
    if stride == 1 and cin == planes:
        pass  # identity shortcut
    elif shortcut == "A":  # subsample, then zero-pad the new channels: no parameters
        if stride != 1:
            sub = {"axes": [2, 3], "steps": [stride, stride]}
            x = b.add("slice", [x], sub, name=f"{tag}.shortcut.subsample")
        extra = planes - cin  # planes // 4 on each side when the width doubles
        if extra:
            pads = [extra // 2, extra - extra // 2, 0, 0, 0, 0]
            x = b.add("pad", [x], {"pads": pads}, name=f"{tag}.shortcut.pad")
    else:  # option B: projection
        x = b.conv(x, planes, 1, stride=stride, padding=0, name=f"{tag}.shortcut.conv")
        x = b.bn(x, name=f"{tag}.shortcut.bn")
    return b.act(b.add("add", [y, x], name=f"{tag}.add"), "relu", name=f"{tag}.relu2")


def _cifar_resnet(
    name: str,
    widths: tuple[int, ...],
    blocks: tuple[int, ...],
    num_classes: int,
    input_shape: tuple[int, ...] | None,
    seed: int,
    softmax: bool,
    shortcut: str,
) -> ModelSpec:
    b = GraphBuilder(name, input_shape or (3, 32, 32), seed)
    x = b.conv(b.input, widths[0], 3, name="stem.conv")
    x = b.act(b.bn(x, name="stem.bn"), "relu", name="stem.relu")
    for stage, (w, n) in enumerate(zip(widths, blocks)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = _basic_block(b, x, w, stride, f"layer{stage + 1}.{i}", shortcut)
    x = b.add("global_avg_pool", [x], name="pool")
    y = b.dense(x, num_classes, name="head")
    kind = "option-A shortcuts" if shortcut == "A" else "projection shortcuts"
    return _finish(b, y, num_classes, softmax, description=f"{name} (CIFAR, {kind})")


def resnet20(
    num_classes: int = 10, input_shape=None, seed: int = 0, softmax: bool = False
) -> ModelSpec:
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2): 3 stages x 3 basic blocks, 16-32-64.

    Shortcut option A (identity; subsample + zero channel padding where the shape changes).
    Default input ``(3, 32, 32)``: 269,722 parameters for 10 classes (the paper's 0.27 M).
    """
    return _cifar_resnet(
        "resnet20", (16, 32, 64), (3, 3, 3), num_classes, input_shape, seed, softmax, "A"
    )


def resnet56(
    num_classes: int = 10, input_shape=None, seed: int = 0, softmax: bool = False
) -> ModelSpec:
    """ResNet-56 for CIFAR (He et al. 2016): 3 stages x 9 basic blocks, 16-32-64, option A.

    Default input ``(3, 32, 32)``: 853,018 parameters for 10 classes (the paper's 0.85 M).
    """
    return _cifar_resnet(
        "resnet56", (16, 32, 64), (9, 9, 9), num_classes, input_shape, seed, softmax, "A"
    )


def resnet18(
    num_classes: int = 10, input_shape=None, seed: int = 0, softmax: bool = False
) -> ModelSpec:
    """ResNet-18, CIFAR variant: 3x3 stem, no max pool, 4 stages x 2 blocks, 64-128-256-512.

    Projection shortcuts (1x1 conv + BN, option B) where the shape changes. Default input
    ``(3, 32, 32)``: 11,173,962 parameters for 10 classes.
    """
    return _cifar_resnet(
        "resnet18",
        (64, 128, 256, 512),
        (2, 2, 2, 2),
        num_classes,
        input_shape,
        seed,
        softmax,
        "B",
    )
