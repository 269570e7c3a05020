"""Single-stage detectors on a MobileNetV2 backbone with an FPN, built from the existing op set.

Two families:

- :func:`fcos_mobilenet_v2` — anchor-free (FCOS / YOLOX-style): per location of strides 8/16/32,
  class logits, a centerness logit and four ReLU'd box distances (in stride units);
- :func:`retinanet_mobilenet_v2` — anchor-based (RetinaNet / SSD-lite-style): 9 anchors per
  location (3 sizes x aspect ratios 0.5/1/2, :func:`dlbench.detection.make_anchors`), class
  logits and ``(dx, dy, dw, dh)`` box deltas.

Backbone: MobileNetV2 (ImageNet strides: stride-2 stem, inverted residuals with depthwise convs
and ReLU6, ``width`` multiplier); C3/C4/C5 are the outputs of the 32-, 96- and 320-channel stages
(strides 8, 16, 32). FPN: 1x1 lateral convs to ``fpn_channels``, top-down nearest ``upsample`` +
``add``, a 3x3 conv on each level. Heads: per level (weights not shared across levels), one 3x3
conv + batch norm + ReLU tower, then 3x3 prediction convs; class biases start at
``-log((1 - 0.01) / 0.01)`` (the RetinaNet prior).

**One graph output.** The backends return a model's first output only, so the raw head
outputs of all levels are concatenated into one tensor ``(N, L, 4 [+1] + C)``: rows are levels
(stride 8 first), then locations row-major, then anchors; columns are the box regression (4),
for FCOS the centerness logit (1), then the class logits — exactly the layout
:class:`dlbench.detection.Decoder` reads. ``spec.metadata["decoder"]`` holds the decoder's
settings and :func:`decoder_for` rebuilds it.

The input size is a parameter: any multiple of 32 (320 and 640 included); another size is a
:class:`~dlbench.errors.ConfigError`.

**Shipped weights.** ``fcos_mobilenet_v2`` (width 0.5, 64 FPN channels, 4 classes) has weights
trained on the generated ``shapes`` train split (``dlbench/model/zoo/weights/
fcos_mobilenet_v2_shapes.{json,npz}``, reproduced by ``benchmarks/train_shapes_detector.py``).
``pretrained`` defaults to True exactly when they fit (4 classes, width 0.5, 64 FPN channels;
the network is fully convolutional, so any input size takes them); ``pretrained=False`` gives
the seeded initialisation.

Example:
    >>> from dlbench import zoo
    >>> spec = zoo.get("fcos_mobilenet_v2", num_classes=4, input_shape=(3, 64, 64))
    >>> spec.output_shape
    (84, 9)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dlbench.detection import Decoder, check_input_size
from dlbench.detection.decode import DEFAULT_ANCHOR_SIZES, DEFAULT_ASPECT_RATIOS, DEFAULT_STRIDES
from dlbench.errors import ConfigError, SpecError
from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.mobilenet import inverted_residual

__all__ = ["decoder_for", "fcos_mobilenet_v2", "retinanet_mobilenet_v2"]

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 for ImageNet
_CFG = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),  # -> C3, stride 8
    (6, 64, 4, 2),
    (6, 96, 3, 1),  # -> C4, stride 16
    (6, 160, 3, 2),
    (6, 320, 1, 1),  # -> C5, stride 32
]
_TAPS = (2, 4, 6)
_PRIOR = -math.log((1 - 0.01) / 0.01)
DEFAULT_INPUT = (3, 320, 320)

#: the shipped FCOS weights (trained on shapes) and the configuration they fit
WEIGHTS = Path(__file__).resolve().parent / "weights" / "fcos_mobilenet_v2_shapes"
SHAPES_CLASSES = 4
PRETRAINED_WIDTH = 0.5
PRETRAINED_FPN = 64
#: the input the shipped weights are evaluated at (their training crops are smaller, see the script)
PRETRAINED_INPUT = DEFAULT_INPUT


def _ch(c: int, width: float) -> int:
    """Channels scaled by ``width``, rounded to a multiple of 8 (at least 8), as MobileNetV2."""
    v = max(8, int(c * width + 4) // 8 * 8)
    return v + 8 if v < 0.9 * c * width else v


def _input(input_shape: Any) -> tuple[int, int, int]:
    shape = tuple(input_shape or DEFAULT_INPUT)
    if len(shape) != 3 or shape[0] != 3:
        raise ConfigError(f"Expected a detector input shape (3, H, W). Received: {shape}")
    h, w = check_input_size((shape[1], shape[2]), DEFAULT_STRIDES)
    return (3, h, w)


def _backbone(b: GraphBuilder, width: float) -> list[str]:
    x = b.conv(b.input, _ch(32, width), 3, stride=2, name="stem.conv")
    x = b.act(b.bn(x, name="stem.bn"), "relu6", name="stem.relu")
    taps, k = [], 0
    for stage, (t, c, n, s) in enumerate(_CFG):
        c = _ch(c, width)
        for i in range(n):
            tag = f"block{k}"
            k += 1
            x = inverted_residual(b, x, t, c, s if i == 0 else 1, tag)
        if stage in _TAPS:
            taps.append(x)
    return taps


def _fpn(b: GraphBuilder, feats: list[str], channels: int) -> list[str]:
    lat = [
        b.conv(f, channels, 1, padding=0, bias=True, name=f"fpn.lateral{i + 3}")
        for i, f in enumerate(feats)
    ]
    top = [lat[-1]]
    for i in range(len(lat) - 2, -1, -1):
        up = b.add("upsample", [top[0]], {"scale_factor": 2}, name=f"fpn.up{i + 3}")
        top.insert(0, b.add("add", [lat[i], up], name=f"fpn.merge{i + 3}"))
    return [b.conv(t, channels, 3, bias=True, name=f"fpn.out{i + 3}") for i, t in enumerate(top)]


def _pred(b: GraphBuilder, x: str, out: int, name: str, bias: float | None = None) -> str:
    y = b.conv(x, out, 3, bias=True, name=name)
    if bias is not None:
        b.params[f"{y}.bias"][:] = bias
        # small weights so the prior dominates at initialisation, as RetinaNet/FCOS do
        b.params[f"{y}.weight"] *= 0.1
    return y


def _rows(b: GraphBuilder, x: str, width: int, name: str) -> str:
    """(C, H, W) -> (H * W * C / width, width): locations row-major, anchors fastest."""
    t = b.add("transpose", [x], {"perm": [0, 2, 3, 1]}, name=f"{name}.nhwc")
    return b.add("reshape", [t], {"shape": [-1, width]}, name=f"{name}.rows")


def _tower(b: GraphBuilder, p: str, lvl: int, channels: int) -> str:
    t = b.conv(p, channels, 3, name=f"head{lvl}.tower")
    return b.act(b.bn(t, name=f"head{lvl}.tower_bn"), "relu", name=f"head{lvl}.tower_relu")


def _finish(b: GraphBuilder, levels: list[str], meta: dict[str, Any]) -> ModelSpec:
    y = b.add("concat", levels, {"axis": 1}, name="detections")
    return b.build([y], meta)


def _meta(kind: str, num_classes: int, shape: tuple[int, int, int], **extra: Any) -> dict:
    decoder = {"kind": kind, "strides": list(DEFAULT_STRIDES), "offset": 0.5}
    if kind == "anchors":
        decoder["anchor_sizes"] = [list(s) for s in DEFAULT_ANCHOR_SIZES]
        decoder["aspect_ratios"] = list(DEFAULT_ASPECT_RATIOS)
    return {
        "task": "detection",
        "num_classes": num_classes,
        "output": "raw detector head outputs (N, rows, box columns + class logits)",
        "input_size": [shape[1], shape[2]],
        "decoder": decoder,
        **extra,
    }


def fcos_mobilenet_v2(
    num_classes: int = 80,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    width: float = PRETRAINED_WIDTH,
    fpn_channels: int = PRETRAINED_FPN,
    pretrained: bool | None = None,
) -> ModelSpec:
    """Anchor-free FCOS-style detector: MobileNetV2 + FPN (P3-P5), output ``(L, 5 + C)``.

    Columns per location: ``l, t, r, b`` (ReLU'd, stride units), centerness logit, C logits.
    ``pretrained`` (default: when they fit, see the module docs) loads the shipped shapes
    weights; otherwise the weights are seeded (``seed``).
    """
    fits = (
        num_classes == SHAPES_CLASSES
        and float(width) == PRETRAINED_WIDTH
        and fpn_channels == PRETRAINED_FPN
    )
    if pretrained is None:
        pretrained = fits and WEIGHTS.with_suffix(".npz").is_file()
    if pretrained and not fits:
        raise ConfigError(
            f"fcos_mobilenet_v2's shipped weights expect num_classes={SHAPES_CLASSES}, "
            f"width={PRETRAINED_WIDTH} and fpn_channels={PRETRAINED_FPN}. Received: "
            f"num_classes={num_classes}, width={width}, fpn_channels={fpn_channels} (pass "
            "pretrained=False for seeded weights)"
        )
    spec = _fcos(num_classes, input_shape, seed, width, fpn_channels)
    return _load_trained(spec) if pretrained else spec


def _load_trained(spec: ModelSpec) -> ModelSpec:
    """``spec`` with the shipped weights (checked name by name, shape by shape)."""
    try:
        trained = ModelSpec.load(WEIGHTS)
    except SpecError as exc:
        raise ConfigError(
            f"fcos_mobilenet_v2's shipped weights cannot be read ({exc}); reproduce them with "
            "`python benchmarks/train_shapes_detector.py`"
        ) from None
    if set(trained.params) != set(spec.params) or any(
        trained.params[k].shape != spec.params[k].shape for k in spec.params
    ):
        raise ConfigError(f"{WEIGHTS}.npz does not match the fcos_mobilenet_v2 graph")
    spec.params = {k: trained.params[k].copy() for k in spec.params}
    spec.metadata = {
        **spec.metadata,
        "pretrained": True,
        "trained": trained.metadata.get("trained", {}),
    }
    spec._invalidate()
    return spec.validate()


def _fcos(
    num_classes: int,
    input_shape: tuple[int, ...] | None,
    seed: int,
    width: float,
    fpn_channels: int,
) -> ModelSpec:
    shape = _input(input_shape)
    b = GraphBuilder("fcos_mobilenet_v2", shape, seed)
    pyramid = _fpn(b, _backbone(b, width), fpn_channels)
    levels = []
    for lvl, p in zip((3, 4, 5), pyramid):
        t = _tower(b, p, lvl, fpn_channels)
        reg = b.act(_pred(b, t, 4, f"head{lvl}.box"), "relu", name=f"head{lvl}.box_relu")
        ctr = _pred(b, t, 1, f"head{lvl}.centerness")
        cls = _pred(b, t, num_classes, f"head{lvl}.cls", bias=_PRIOR)
        both = b.add("concat", [reg, ctr, cls], {"axis": 1}, name=f"head{lvl}.out")
        levels.append(_rows(b, both, 5 + num_classes, f"head{lvl}"))
    meta = _meta(
        "points",
        num_classes,
        shape,
        description=f"FCOS-style anchor-free detector, MobileNetV2 x{width} + FPN, strides 8/16/32",
        pretrained=False,
    )
    return _finish(b, levels, meta)


def retinanet_mobilenet_v2(
    num_classes: int = 80,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    width: float = 1.0,
    fpn_channels: int = 64,
) -> ModelSpec:
    """Anchor-based RetinaNet-style detector: MobileNetV2 + FPN, 9 anchors per location,
    output ``(L * 9, 4 + C)`` (``dx, dy, dw, dh``, then C logits)."""
    shape = _input(input_shape)
    b = GraphBuilder("retinanet_mobilenet_v2", shape, seed)
    pyramid = _fpn(b, _backbone(b, width), fpn_channels)
    a = len(DEFAULT_ASPECT_RATIOS) * len(DEFAULT_ANCHOR_SIZES[0])
    levels = []
    for lvl, p in zip((3, 4, 5), pyramid):
        t = _tower(b, p, lvl, fpn_channels)
        reg = _rows(b, _pred(b, t, a * 4, f"head{lvl}.box"), 4, f"head{lvl}.box")
        cls = _rows(
            b,
            _pred(b, t, a * num_classes, f"head{lvl}.cls", bias=_PRIOR),
            num_classes,
            f"head{lvl}.cls",
        )
        levels.append(b.add("concat", [reg, cls], {"axis": 2}, name=f"head{lvl}.out"))
    meta = _meta(
        "anchors",
        num_classes,
        shape,
        description=f"RetinaNet-style anchor detector, MobileNetV2 x{width} + FPN, strides 8/16/32",
    )
    return _finish(b, levels, meta)


def decoder_for(spec: ModelSpec, **options: Any) -> Decoder:
    """The :class:`~dlbench.detection.Decoder` of a zoo detector (``options``: thresholds etc.).

    Raises:
        ConfigError: when the spec is not a detector, or its output does not have the layout its
            declared decoder reads.
    """
    meta = spec.metadata or {}
    dec = meta.get("decoder")
    if meta.get("task") != "detection" or not isinstance(dec, dict):
        raise ConfigError(
            f"Expected a detection model with a declared decoder. Received: {spec.name}"
        )
    kw: dict[str, Any] = {
        "kind": dec["kind"],
        "input_size": tuple(spec.input_shape[1:]),
        "num_classes": int(meta["num_classes"]),
        "strides": tuple(dec["strides"]),
        "offset": float(dec.get("offset", 0.5)),
    }
    if dec["kind"] == "anchors":
        kw["anchor_sizes"] = tuple(tuple(s) for s in dec["anchor_sizes"])
        kw["aspect_ratios"] = tuple(dec["aspect_ratios"])
    decoder = Decoder(**{**kw, **options})
    if tuple(spec.output_shape) != (decoder.num_rows, decoder.row_width):
        raise ConfigError(
            f"Detector {spec.name!r} outputs per-sample shape {tuple(spec.output_shape)}, but its "
            f"declared {dec['kind']} decoder reads ({decoder.num_rows}, {decoder.row_width})"
        )
    return decoder
