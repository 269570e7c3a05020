"""ImageNet-size classifiers built natively as ModelSpecs: torchvision's ResNet-50, MobileNetV2,
EfficientNet-B0, ViT-B/16 and ConvNeXt-Tiny.

Each is torchvision's architecture layer for layer, with exactly its parameter count for 1000
classes (``spec.stats()["params"]``: 25,557,032 / 3,504,872 / 5,288,548 / 86,567,656 /
28,589,128; batch-norm running statistics are buffers, as in ``module.parameters()``). Nodes
are named after torchvision's modules, so a spec parameter is named like the torchvision
state-dict entry it holds (``layer1.0.conv1.weight``; ``<bn>.mean``/``<bn>.var`` for
``running_mean``/``running_var``): :func:`load_torchvision` loads such a state dict (e.g.
``{k: v.numpy() for k, v in torchvision_model.state_dict().items()}``) into a spec.

Weights are drawn at random (seeded, float32); ``weights="zeros"`` builds the graph with
zero-stride zero arrays instead (no memory, no drawing: for counting, as ``zoo.describe`` does).
The architecture knobs (depths, widths, patch size...) exist so that tests can compare a small
configuration cheaply with an independent implementation. Where torchvision reshapes (SE 1x1 convs as dense layers on the pooled vector,
the class token and position embedding without their leading 1), the weights hold the same
numbers in another shape; :func:`load_torchvision` reshapes them.

Expected input (torchvision's evaluation transform for these weights, recorded as
``metadata["preprocessing"]``): RGB, resize the shorter side to 256 (ConvNeXt-Tiny's
weights: 236), centre-crop 224, ``(x / 255 - mean) / std`` with the ImageNet mean
``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``; ``dlbench run`` states it against
the dataset's transform.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.classic import _finish
from dlbench.model.zoo.vit import self_attention

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Parameter counts of torchvision's models for 1000 classes (``sum(p.numel() for p in
#: model.parameters())``, as published in torchvision's model documentation).
TORCHVISION_PARAMS = {
    "resnet50": 25_557_032,
    "mobilenet_v2_224": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "vit_b_16": 86_567_656,
    "convnext_tiny": 28_589_128,
}

#: gamma range of the last batch norm of a residual branch (keeps an untrained deep net bounded)
_RESIDUAL_GAMMA = (0.1, 0.3)


def _preprocessing(resize: int, crop: int = 224) -> dict[str, Any]:
    return {
        "resize": resize,
        "crop": crop,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "layout": "RGB, NCHW, float32; x / 255 then (x - mean) / std",
    }


class _Builder(GraphBuilder):
    """float32 draws: half the memory and time of the float64 default (up to 86 M weights).

    With ``weights="zeros"`` every parameter is a read-only zero-stride view of one zero (no
    memory, no drawing): the graph, shapes and ``stats()`` are those of the real model, for
    counting and listing.
    """

    def __init__(
        self, name: str, input_shape: tuple[int, ...], seed: int = 0, weights: str = "random"
    ) -> None:
        if weights not in ("random", "zeros"):
            raise ConfigError(
                f"Expected `weights` to be 'random' or 'zeros'. Received: weights={weights!r}"
            )
        super().__init__(name, input_shape, seed)
        self.lazy = weights == "zeros"

    def param(self, name: str, array: np.ndarray) -> str:
        if not self.lazy:
            return super().param(name, array)
        if name in self.params:
            raise ValueError(f"parameter {name!r} defined twice")
        self.params[name] = np.broadcast_to(np.float32(0), np.shape(array))
        return name

    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        if self.lazy:
            return np.broadcast_to(np.float32(0), shape)
        scale = np.float32(math.sqrt(2.0 / fan_in))
        return self.rng.standard_normal(shape, dtype=np.float32) * scale

    def uniform(self, shape: tuple[int, ...], bound: float) -> np.ndarray:
        if self.lazy:
            return np.broadcast_to(np.float32(0), shape)
        r = self.rng.random(shape, dtype=np.float32)
        return (r * np.float32(2.0) - np.float32(1.0)) * np.float32(bound)

    def conv_bn(
        self,
        x: str,
        out: int,
        k: int,
        tag: str,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        gamma: tuple[float, float] = (0.8, 1.2),
        conv: str = ".0",
        bn: str = ".1",
    ) -> str:
        """conv (no bias, padding k//2) + batch norm (+ activation), named ``tag + conv`` etc."""
        y = self.conv(x, out, k, stride=stride, groups=groups, name=f"{tag}{conv}")
        y = self.bn(y, gamma=gamma, name=f"{tag}{bn}")
        return self.act(y, act, name=f"{tag}{bn}.{act}") if act else y

    def ln2d(self, x: str, name: str, eps: float = 1e-6) -> str:
        """torchvision's LayerNorm2d: layer norm over channels of an NCHW map."""
        y = self.add("transpose", [x], {"perm": [0, 2, 3, 1]}, name=f"{name}.to_nhwc")
        y = self.ln(y, eps=eps, name=name)
        return self.add("transpose", [y], {"perm": [0, 3, 1, 2]}, name=f"{name}.to_nchw")


def _check_knobs(name: str, **knobs: Any) -> None:
    for key, value in knobs.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ConfigError(
                f"Expected `{key}` of {name} to be a positive int (or a tuple of them). "
                f"Received: {key}={value!r}"
            )


# -- ResNet-50 -------------------------------------------------------------------------------------


def resnet50(
    num_classes: int = 1000,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    weights: str = "random",
    layers: tuple[int, ...] = (3, 4, 6, 3),
    width: int = 64,
) -> ModelSpec:
    """ResNet-50 as torchvision builds it (He et al. 2016, "v1.5": the stride of a downsampling
    bottleneck is in its 3x3 conv): 7x7/2 stem, 3x3/2 max pool, bottlenecks 3-4-6-3 of widths
    64-128-256-512 (expansion 4), 1x1 conv + BN projection shortcuts, global average pool, linear
    head. Default input ``(3, 224, 224)``: 25,557,032 parameters for 1000 classes.
    """
    _check_knobs("resnet50", layers=tuple(layers), width=width)
    b = _Builder("resnet50", input_shape or (3, 224, 224), seed, weights)
    x = b.conv(b.input, width, 7, stride=2, padding=3, name="conv1")
    x = b.act(b.bn(x, name="bn1"), "relu", name="relu")
    x = b.add("max_pool", [x], {"kernel_size": 3, "stride": 2, "padding": 1}, name="maxpool")
    for stage, n in enumerate(layers):
        planes = width * 2**stage
        for i in range(n):
            tag = f"layer{stage + 1}.{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            cin = b.shape(x)[0]
            y = b.conv_bn(x, planes, 1, tag, conv=".conv1", bn=".bn1")
            y = b.conv_bn(y, planes, 3, tag, stride=stride, conv=".conv2", bn=".bn2")
            y = b.conv_bn(
                y, planes * 4, 1, tag, act=None, gamma=_RESIDUAL_GAMMA, conv=".conv3", bn=".bn3"
            )
            short = x
            if stride != 1 or cin != planes * 4:
                short = b.conv_bn(x, planes * 4, 1, f"{tag}.downsample", stride=stride, act=None)
            x = b.act(b.add("add", [y, short], name=f"{tag}.add"), "relu", name=f"{tag}.out")
    x = b.add("global_avg_pool", [x], name="avgpool")
    y = b.dense(x, num_classes, name="fc")
    return _finish(
        b,
        y,
        num_classes,
        softmax,
        description="ResNet-50 (torchvision, ImageNet)",
        preprocessing=_preprocessing(256),
    )


# -- MobileNetV2 -----------------------------------------------------------------------------------

#: (expansion t, output channels c, repeats n, first stride s), the paper's Table 2
_MOBILENET_V2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mobilenet_v2_224(
    num_classes: int = 1000,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    weights: str = "random",
) -> ModelSpec:
    """MobileNetV2 as torchvision builds it (Sandler et al. 2018; width 1.0): 3x3/2 stem, 17
    inverted residuals (1x1 expand, 3x3 depthwise, 1x1 linear projection; BN + ReLU6), 1x1 conv to
    1280, global average pool, dropout 0.2, linear head. Default input ``(3, 224, 224)``:
    3,504,872 parameters for 1000 classes. (``mobilenet_v2`` is the CIFAR variant.)
    """
    b = _Builder("mobilenet_v2_224", input_shape or (3, 224, 224), seed, weights)
    x = b.conv_bn(b.input, 32, 3, "features.0", stride=2, act="relu6")
    k = 1
    for t, c, n, s in _MOBILENET_V2:
        for i in range(n):
            tag = f"features.{k}.conv"
            k += 1
            cin = b.shape(x)[0]
            stride = s if i == 0 else 1
            residual = stride == 1 and cin == c
            y, j = x, 0
            if t != 1:
                y = b.conv_bn(y, cin * t, 1, f"{tag}.0", act="relu6")
                j = 1
            hidden = b.shape(y)[0]
            y = b.conv_bn(y, hidden, 3, f"{tag}.{j}", stride=stride, groups=hidden, act="relu6")
            y = b.conv_bn(
                y,
                c,
                1,
                tag,
                act=None,
                gamma=_RESIDUAL_GAMMA if residual else (0.8, 1.2),
                conv=f".{j + 1}",
                bn=f".{j + 2}",
            )
            x = b.add("add", [x, y], name=f"{tag}.add") if residual else y
    x = b.conv_bn(x, 1280, 1, f"features.{k}", act="relu6")
    x = b.add("global_avg_pool", [x], name="avgpool")
    x = b.add("dropout", [x], {"rate": 0.2}, name="classifier.0")
    y = b.dense(x, num_classes, name="classifier.1")
    return _finish(
        b,
        y,
        num_classes,
        softmax,
        description="MobileNetV2 (torchvision, ImageNet 224)",
        preprocessing=_preprocessing(256),
    )


# -- EfficientNet-B0 -------------------------------------------------------------------------------

#: (expand ratio, kernel, first stride, input channels, output channels, layers): torchvision's
#: ``_efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=1.0)``
_EFFICIENTNET_B0 = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


def efficientnet_b0(
    num_classes: int = 1000,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    weights: str = "random",
) -> ModelSpec:
    """EfficientNet-B0 as torchvision builds it (Tan & Le 2019): 3x3/2 stem, 16 MBConv blocks
    (1x1 expand, kxk depthwise with symmetric padding k//2, squeeze-excitation to a quarter of the
    block's input width with SiLU and a sigmoid gate, 1x1 projection; BN eps 1e-5, SiLU; the
    residual where stride 1 and widths match; stochastic depth is the identity at inference),
    1x1 conv to 1280, global average pool, dropout 0.2, linear head. Default input
    ``(3, 224, 224)``: 5,288,548 parameters for 1000 classes.

    The squeeze-excitation 1x1 convs act on the pooled vector, so they are dense layers here:
    torchvision's ``fc1.weight`` of shape ``(s, c, 1, 1)`` is this spec's ``(s, c)``.
    (TensorFlow/Keras pad the stride-2 convs asymmetrically, ``correct_pad``; torchvision and
    this spec pad symmetrically.)
    """
    b = _Builder("efficientnet_b0", input_shape or (3, 224, 224), seed, weights)
    x = b.conv_bn(b.input, 32, 3, "features.0", stride=2, act="silu")
    for stage, (t, k, s, _cin, cout, n) in enumerate(_EFFICIENTNET_B0, start=1):
        for i in range(n):
            tag = f"features.{stage}.{i}.block"
            stride = s if i == 0 else 1
            c_in = b.shape(x)[0]
            residual = stride == 1 and c_in == cout
            y, j = x, 0
            if t != 1:
                y = b.conv_bn(y, c_in * t, 1, f"{tag}.0", act="silu")
                j = 1
            hidden = b.shape(y)[0]
            y = b.conv_bn(y, hidden, k, f"{tag}.{j}", stride=stride, groups=hidden, act="silu")
            # squeeze-excitation
            se = f"{tag}.{j + 1}"
            squeeze = max(1, c_in // 4)
            z = b.add("global_avg_pool", [y], name=f"{se}.avgpool")
            z = b.act(b.dense(z, squeeze, name=f"{se}.fc1"), "silu", name=f"{se}.silu")
            z = b.act(b.dense(z, hidden, name=f"{se}.fc2"), "sigmoid", name=f"{se}.sigmoid")
            z = b.add("reshape", [z], {"shape": [hidden, 1, 1]}, name=f"{se}.unsqueeze")
            y = b.add("mul", [y, z], name=f"{se}.scale")
            y = b.conv_bn(
                y,
                cout,
                1,
                f"{tag}.{j + 2}",
                act=None,
                gamma=_RESIDUAL_GAMMA if residual else (0.8, 1.2),
            )
            x = b.add("add", [y, x], name=f"{tag}.add") if residual else y
    x = b.conv_bn(x, 1280, 1, "features.8", act="silu")
    x = b.add("global_avg_pool", [x], name="avgpool")
    x = b.add("dropout", [x], {"rate": 0.2}, name="classifier.0")
    y = b.dense(x, num_classes, name="classifier.1")
    return _finish(
        b,
        y,
        num_classes,
        softmax,
        description="EfficientNet-B0 (torchvision, ImageNet)",
        preprocessing=_preprocessing(256),
    )


# -- ViT-B/16 --------------------------------------------------------------------------------------


def vit_b_16(
    num_classes: int = 1000,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    weights: str = "random",
    patch: int = 16,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_dim: int = 3072,
) -> ModelSpec:
    """ViT-B/16 as torchvision builds it (Dosovitskiy et al. 2021): 16x16 patch embedding (a
    conv with bias), a learned class token prepended, learned position embedding, 12 pre-norm
    blocks (layer norm eps 1e-6, 12-head self-attention, GELU MLP 3072), final layer norm, the
    class token's features into a linear head. Default input ``(3, 224, 224)`` (196 patches):
    86,567,656 parameters for 1000 classes.

    The class token is prepended with the op set as it is: a zero row (padding of a one-element
    slice of the patch tokens, then a slice of that padding: exactly 0, whatever the input) plus
    the ``class_token`` parameter, concatenated before the patch tokens; no extra parameters.
    """
    _check_knobs("vit_b_16", patch=patch, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
    shape = tuple(input_shape or (3, 224, 224))
    b = _Builder("vit_b_16", shape, seed, weights)
    if len(shape) != 3 or shape[1] % patch or shape[2] % patch:
        raise ConfigError(
            f"Expected an input (C, H, W) with H and W multiples of the patch size {patch}. "
            f"Received: {shape}"
        )
    x = b.conv(b.input, dim, patch, stride=patch, padding=0, bias=True, name="conv_proj")
    _, h, w = b.shape(x)
    t = h * w
    x = b.add("reshape", [x], {"shape": [dim, t]}, name="flatten_patches")
    x = b.add("transpose", [x], {"perm": [0, 2, 1]}, name="patch_tokens")
    z = b.add("slice", [x], {"axes": [1, 2], "ends": [1, 1]}, name="class_token.seed")
    z = b.add("pad", [z], {"pads": [1, 0, 0, dim - 1]}, name="class_token.pad")
    z = b.add("slice", [z], {"axes": [1], "ends": [1]}, name="class_token.zero")
    cls = b.add("add", [z], {}, {"other": b.rng.normal(0, 0.02, (1, dim))}, name="class_token")
    x = b.add("concat", [cls, x], {"axis": 1}, name="tokens")
    pos = b.rng.normal(0, 0.02, (t + 1, dim))
    x = b.add("add", [x], {}, {"other": pos}, name="encoder.pos_embedding")
    for i in range(depth):
        tag = f"encoder.layers.encoder_layer_{i}"
        y = b.ln(x, eps=1e-6, name=f"{tag}.ln_1")
        y = self_attention(b, y, dim, heads, name=f"{tag}.self_attention")
        x = b.add("add", [x, y], name=f"{tag}.add_1")
        y = b.ln(x, eps=1e-6, name=f"{tag}.ln_2")
        y = b.dense(y, mlp_dim, init="xavier", name=f"{tag}.mlp.0")
        y = b.act(y, "gelu", name=f"{tag}.mlp.1")
        y = b.dense(y, dim, init="xavier", name=f"{tag}.mlp.3")
        x = b.add("add", [x, y], name=f"{tag}.add_2")
    x = b.ln(x, eps=1e-6, name="encoder.ln")
    x = b.add("slice", [x], {"axes": [1], "ends": [1]}, name="class_features")
    x = b.add("reshape", [x], {"shape": [dim]}, name="class_features.flat")
    y = b.dense(x, num_classes, name="heads.head")
    return _finish(
        b,
        y,
        num_classes,
        softmax,
        description=f"ViT-B/{patch} (torchvision, ImageNet)",
        preprocessing=_preprocessing(256),
    )


# -- ConvNeXt-Tiny ---------------------------------------------------------------------------------


def convnext_tiny(
    num_classes: int = 1000,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    weights: str = "random",
    depths: tuple[int, ...] = (3, 3, 9, 3),
    dims: tuple[int, ...] = (96, 192, 384, 768),
) -> ModelSpec:
    """ConvNeXt-Tiny as torchvision builds it (Liu et al. 2022): 4x4/4 patchify stem + channel
    layer norm, stages 3-3-9-3 of widths 96-192-384-768 of blocks (7x7 depthwise conv, layer norm
    eps 1e-6, 4x MLP with GELU, per-channel layer scale, residual; stochastic depth is the
    identity at inference), layer norm + 2x2/2 conv between stages, global average pool, layer
    norm, linear head. Default input ``(3, 224, 224)``: 28,589,128 parameters for 1000 classes.
    """
    _check_knobs("convnext_tiny", depths=tuple(depths), dims=tuple(dims))
    if len(depths) != len(dims):
        raise ConfigError(
            f"Expected as many `depths` as `dims`. Received: depths={depths}, dims={dims}"
        )
    b = _Builder("convnext_tiny", input_shape or (3, 224, 224), seed, weights)
    x = b.conv(b.input, dims[0], 4, stride=4, padding=0, bias=True, name="features.0.0")
    x = b.ln2d(x, "features.0.1")
    for stage, (n, d) in enumerate(zip(depths, dims)):
        if stage > 0:
            tag = f"features.{2 * stage}"
            x = b.ln2d(x, f"{tag}.0")
            x = b.conv(x, d, 2, stride=2, padding=0, bias=True, name=f"{tag}.1")
        for i in range(n):
            tag = f"features.{2 * stage + 1}.{i}"
            y = b.conv(x, d, 7, groups=d, bias=True, name=f"{tag}.block.0")
            y = b.add("transpose", [y], {"perm": [0, 2, 3, 1]}, name=f"{tag}.block.1")
            y = b.ln(y, eps=1e-6, name=f"{tag}.block.2")
            y = b.dense(y, 4 * d, name=f"{tag}.block.3")
            y = b.act(y, "gelu", name=f"{tag}.block.4")
            y = b.dense(y, d, name=f"{tag}.block.5")
            y = b.add("transpose", [y], {"perm": [0, 3, 1, 2]}, name=f"{tag}.block.6")
            scale = b.rng.uniform(0.05, 0.2, (d, 1, 1))
            y = b.add("mul", [y], {}, {"other": scale}, name=f"{tag}.layer_scale")
            x = b.add("add", [x, y], name=f"{tag}.add")
    x = b.add("global_avg_pool", [x], name="avgpool")
    x = b.ln(x, eps=1e-6, name="classifier.0")
    y = b.dense(x, num_classes, name="classifier.2")
    return _finish(
        b,
        y,
        num_classes,
        softmax,
        description="ConvNeXt-Tiny (torchvision, ImageNet)",
        preprocessing=_preprocessing(236),
    )


# -- weights ---------------------------------------------------------------------------------------

_ROLE_KEYS = {
    "mean": "running_mean",
    "var": "running_var",
    "in_weight": "in_proj_weight",
    "in_bias": "in_proj_bias",
    "out_weight": "out_proj.weight",
    "out_bias": "out_proj.bias",
}


def torchvision_key(param: str) -> str:
    """The torchvision state-dict key of a spec parameter of this module's models
    (``layer1.0.bn1.mean`` -> ``layer1.0.bn1.running_mean``; ``class_token.other`` ->
    ``class_token``)."""
    node, _, role = param.rpartition(".")
    if role == "other":
        return node
    return f"{node}.{_ROLE_KEYS.get(role, role)}"


def load_torchvision(spec: ModelSpec, state_dict: Mapping[str, Any]) -> ModelSpec:
    """A copy of ``spec`` (one of this module's models) holding the weights of a torchvision
    state dict of the same architecture (arrays, or anything ``numpy.asarray`` reads).

    Every spec parameter must be found, with the same number of elements (reshaped to the
    spec's layout where torchvision keeps extra size-1 axes); every state-dict entry must be
    used (``num_batches_tracked`` counters aside). Raises :class:`ConfigError` listing what is
    missing, unused or of the wrong size.
    """
    params: dict[str, np.ndarray] = {}
    missing, wrong = [], []
    used = set()
    for name, current in spec.params.items():
        key = torchvision_key(name)
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        arr = np.asarray(state_dict[key], dtype=np.float32)
        if arr.size != current.size:
            wrong.append(f"{key}: {tuple(arr.shape)}, expected {tuple(current.shape)}")
            continue
        params[name] = np.ascontiguousarray(arr.reshape(current.shape))
    unused = sorted(
        k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")
    )
    if missing or wrong or unused:
        parts = []
        for what, items in (("missing", missing), ("wrong size", wrong), ("unused", unused)):
            if items:
                shown = ", ".join(items[:8]) + (
                    f" (+{len(items) - 8} more)" if len(items) > 8 else ""
                )
                parts.append(f"{len(items)} {what}: {shown}")
        raise ConfigError(
            f"Expected a state dict of {spec.name}'s torchvision architecture "
            f"({len(spec.params)} tensors). Received one that does not fit: " + "; ".join(parts)
        )
    out = spec.copy()
    out.params = params
    out._invalidate()
    return out.validate()
