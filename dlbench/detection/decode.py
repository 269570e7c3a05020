"""Detector decoding: grid points and anchors, box transforms, the whole post-processing stage.

The zoo's detectors (:mod:`dlbench.model.zoo.detection`) return **one** tensor per image,
``(L, 4 [+1] + C)``: one row per location (anchor-free) or per anchor (anchor-based), levels
in increasing stride order, locations row-major (``y`` then ``x``), anchors fastest. The columns
are the box regression (4), for the anchor-free kind a centerness logit (1), then one class
logit per class. A :class:`Decoder` knows that layout for one input size.

- ``kind="points"`` (FCOS / YOLOX-style): one point per location at
  ``((x + offset) * stride, (y + offset) * stride)``; regression = distances ``(l, t, r, b)`` in
  stride units (ReLU'd by the head): ``x1 = cx - l*s, y1 = cy - t*s, x2 = cx + r*s,
  y2 = cy + b*s`` (torchvision's ``BoxLinearCoder(normalize_by_size=True)``); score =
  ``sqrt(sigmoid(cls) * sigmoid(ctr))`` (torchvision FCOS).
- ``kind="anchors"`` (RetinaNet / SSD-lite-style): :func:`make_anchors` per level (sizes x
  aspect ratios, ``h = s*sqrt(ar)``, ``w = s/sqrt(ar)``, rounded base box, as torchvision's
  ``AnchorGenerator``), regression ``(dx, dy, dw, dh)`` with weights (1, 1, 1, 1), ``dw, dh``
  clamped at ``log(1000/16)``: ``cx = dx*wa + cxa``, ``w = exp(dw)*wa`` (torchvision
  ``BoxCoder``); score = ``sigmoid(cls)``.

Post-processing (:meth:`Decoder.postprocess`): decode, candidates ``score > score_threshold``,
the ``pre_nms_top_k`` best (ties: lower row, then lower class first), boxes clipped to the input,
class-aware :func:`~dlbench.detection.nms.nms`, ``max_detections`` kept. Everything here is
float64 NumPy: the reference the native paths (``dlbench.backends.<fw>.postprocess``) match.

Example:
    >>> d = Decoder("points", input_size=64, num_classes=3)
    >>> d.num_rows, d.row_width
    (84, 8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dlbench.detection.nms import COCO_MAX_DETECTIONS, Detections, nms
from dlbench.errors import ConfigError, DataError

__all__ = [
    "BBOX_XFORM_CLIP",
    "DEFAULT_ANCHOR_SIZES",
    "Decoder",
    "check_input_size",
    "decode_anchor_boxes",
    "decode_point_boxes",
    "grid_points",
    "make_anchors",
    "sigmoid",
]

#: torchvision's clamp on ``dw``/``dh`` before ``exp``
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
#: RetinaNet anchor sizes for strides 8/16/32: ``int(32 * 2**(k/3))`` etc. (torchvision)
DEFAULT_ANCHOR_SIZES: tuple[tuple[int, ...], ...] = (
    (32, 40, 50),
    (64, 80, 101),
    (128, 161, 203),
)
DEFAULT_ASPECT_RATIOS: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32)
KINDS = ("points", "anchors")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (float64)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def check_input_size(input_size: int | Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of the model input; each must be a positive multiple of the largest stride.

    Raises:
        ConfigError: naming the size received and the stride it must be a multiple of.
    """
    hw = (input_size, input_size) if isinstance(input_size, (int, np.integer)) else input_size
    hw = tuple(hw)
    top = max(strides)
    if (
        len(hw) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in hw)
        or min(hw) < top
        or any(v % top for v in hw)
    ):
        raise ConfigError(
            f"Expected the detector input size to be a positive multiple of its largest stride "
            f"{top} (e.g. 320 or 640). Received: input_size={input_size!r}"
        )
    return int(hw[0]), int(hw[1])


def feature_sizes(hw: tuple[int, int], strides: Sequence[int]) -> list[tuple[int, int]]:
    return [(hw[0] // s, hw[1] // s) for s in strides]


def grid_points(
    hw: tuple[int, int], strides: Sequence[int] = DEFAULT_STRIDES, offset: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(L, 2)`` (x, y) of every location of every level, and each one's stride ``(L,)``."""
    pts, strd = [], []
    for (fh, fw), s in zip(feature_sizes(hw, strides), strides):
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        p = np.stack([(xs.ravel() + offset) * s, (ys.ravel() + offset) * s], axis=1)
        pts.append(p.astype(np.float64))
        strd.append(np.full(fh * fw, float(s)))
    return np.concatenate(pts), np.concatenate(strd)


def base_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """``(len(ar) * len(sizes), 4)`` zero-centred anchors, ratio-major (torchvision order)."""
    scales = np.asarray(sizes, dtype=np.float64)
    ar = np.asarray(aspect_ratios, dtype=np.float64)
    h_ratios = np.sqrt(ar)
    w_ratios = 1.0 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).ravel()
    hs = (h_ratios[:, None] * scales[None, :]).ravel()
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2.0)


def make_anchors(
    hw: tuple[int, int],
    strides: Sequence[int] = DEFAULT_STRIDES,
    sizes: Sequence[Sequence[float]] = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    offset: float = 0.5,
) -> np.ndarray:
    """All anchors ``(L * A, 4)`` xyxy: levels, then locations row-major, then anchors.

    Centres at ``((x + offset) * stride, (y + offset) * stride)`` (torchvision uses offset 0).
    """
    if len(sizes) != len(strides):
        raise ConfigError(
            f"Expected one tuple of anchor sizes per stride ({len(strides)}). "
            f"Received: {len(sizes)}"
        )
    out = []
    for (fh, fw), s, sz in zip(feature_sizes(hw, strides), strides, sizes):
        base = base_anchors(sz, aspect_ratios)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs.ravel() + offset) * s
        cy = (ys.ravel() + offset) * s
        shift = np.stack([cx, cy, cx, cy], axis=1)
        out.append((shift[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return np.concatenate(out)


def decode_point_boxes(points: np.ndarray, strides: np.ndarray, ltrb: np.ndarray) -> np.ndarray:
    """FCOS: xyxy from points ``(L, 2)``, strides ``(L,)`` and distances ``(..., L, 4)``."""
    d = np.asarray(ltrb, dtype=np.float64) * strides[:, None]
    cx, cy = points[:, 0], points[:, 1]
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1)


def decode_anchor_boxes(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """RetinaNet ``BoxCoder`` (weights 1): xyxy from anchors ``(L, 4)`` and ``(..., L, 4)`` deltas."""
    d = np.asarray(deltas, dtype=np.float64)
    wa = anchors[:, 2] - anchors[:, 0]
    ha = anchors[:, 3] - anchors[:, 1]
    cxa = anchors[:, 0] + 0.5 * wa
    cya = anchors[:, 1] + 0.5 * ha
    dw = np.minimum(d[..., 2], BBOX_XFORM_CLIP)
    dh = np.minimum(d[..., 3], BBOX_XFORM_CLIP)
    cx = d[..., 0] * wa + cxa
    cy = d[..., 1] * ha + cya
    w = np.exp(dw) * wa
    h = np.exp(dh) * ha
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


@dataclass
class Decoder:
    """Decoding and post-processing of one detector's raw output at one input size.

    Args:
        kind: ``"points"`` (anchor-free) or ``"anchors"`` (anchor-based).
        input_size: Model input side, or ``(height, width)``; multiples of the largest stride.
        num_classes: Class logits per row.
        strides: Feature strides of the levels.
        anchor_sizes: Per level anchor sizes (``kind="anchors"``).
        aspect_ratios: Anchor aspect ratios h/w (``kind="anchors"``).
        offset: Grid offset in strides (0.5 = cell centres; torchvision uses 0).
        score_threshold: Candidates need a score strictly greater.
        iou_threshold: NMS IoU threshold.
        pre_nms_top_k: Best candidates kept before NMS (over all levels).
        max_detections: Detections kept per image (COCO: 100).
    """

    kind: str
    input_size: int | tuple[int, int]
    num_classes: int
    strides: tuple[int, ...] = DEFAULT_STRIDES
    anchor_sizes: tuple[tuple[float, ...], ...] = DEFAULT_ANCHOR_SIZES
    aspect_ratios: tuple[float, ...] = DEFAULT_ASPECT_RATIOS
    offset: float = 0.5
    score_threshold: float = 0.05
    iou_threshold: float = 0.6
    pre_nms_top_k: int = 1000
    max_detections: int = COCO_MAX_DETECTIONS
    hw: tuple[int, int] = field(init=False)
    priors: np.ndarray = field(init=False, repr=False)
    prior_strides: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"Expected `kind` in {KINDS}. Received: kind={self.kind!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ConfigError(
                f"Expected `num_classes` to be a positive int. Received: {self.num_classes!r}"
            )
        if not isinstance(self.pre_nms_top_k, int) or self.pre_nms_top_k < 1:
            raise ConfigError(
                f"Expected `pre_nms_top_k` to be a positive int. Received: {self.pre_nms_top_k!r}"
            )
        self.strides = tuple(int(s) for s in self.strides)
        self.hw = check_input_size(self.input_size, self.strides)
        if self.kind == "points":
            self.priors, self.prior_strides = grid_points(self.hw, self.strides, self.offset)
        else:
            self.priors = make_anchors(
                self.hw, self.strides, self.anchor_sizes, self.aspect_ratios, self.offset
            )
            self.prior_strides = np.repeat(
                np.concatenate(
                    [
                        np.full((h * w,), float(s))
                        for (h, w), s in zip(feature_sizes(self.hw, self.strides), self.strides)
                    ]
                ),
                self.anchors_per_location,
            )

    # -- layout ---------------------------------------------------------------------------------

    @property
    def anchors_per_location(self) -> int:
        if self.kind == "points":
            return 1
        return len(self.aspect_ratios) * len(self.anchor_sizes[0])

    @property
    def box_columns(self) -> int:
        """Columns before the class logits: 4 (+1 centerness for ``points``)."""
        return 5 if self.kind == "points" else 4

    @property
    def num_rows(self) -> int:
        return int(self.priors.shape[0])

    @property
    def row_width(self) -> int:
        return self.box_columns + self.num_classes

    def check_raw(self, raw: np.ndarray) -> np.ndarray:
        """The raw output as ``(N, L, 4 [+1] + C)``; a mismatch is a clear error."""
        r = np.asarray(raw)
        if r.ndim == 2:
            r = r[None]
        want = (self.num_rows, self.row_width)
        if r.ndim != 3 or r.shape[1:] != want:
            raise DataError(
                f"Expected raw detector output of shape (N, {want[0]}, {want[1]}) for a "
                f"{self.kind} decoder at input {self.hw[0]}x{self.hw[1]} with "
                f"{self.num_classes} classes. Received: shape {tuple(r.shape)}"
            )
        return r

    def to_dict(self) -> dict:
        """JSON-safe description (for result files)."""
        return {
            "kind": self.kind,
            "input_size": list(self.hw),
            "num_classes": self.num_classes,
            "strides": list(self.strides),
            "anchor_sizes": [list(s) for s in self.anchor_sizes]
            if self.kind == "anchors"
            else None,
            "aspect_ratios": list(self.aspect_ratios) if self.kind == "anchors" else None,
            "offset": self.offset,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "pre_nms_top_k": self.pre_nms_top_k,
            "max_detections": self.max_detections,
        }

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(N, L, 4)`` xyxy in input pixels (not clipped) and scores ``(N, L, C)``."""
        r = self.check_raw(raw).astype(np.float64)
        if self.kind == "points":
            boxes = decode_point_boxes(self.priors, self.prior_strides, r[..., :4])
            scores = np.sqrt(sigmoid(r[..., 5:]) * sigmoid(r[..., 4:5]))
        else:
            boxes = decode_anchor_boxes(self.priors, r[..., :4])
            scores = sigmoid(r[..., 4:])
        return boxes, scores

    def clip(self, boxes: np.ndarray) -> np.ndarray:
        h, w = self.hw
        out = np.array(boxes, dtype=np.float64, copy=True)
        out[..., 0::2] = np.clip(out[..., 0::2], 0.0, float(w))
        out[..., 1::2] = np.clip(out[..., 1::2], 0.0, float(h))
        return out

    def candidates(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and class of the ``pre_nms_top_k`` best ``score > score_threshold`` of one image.

        Ties: the lower flat index ``row * C + class`` first.
        """
        flat = scores.reshape(-1)
        idx = np.flatnonzero(flat > self.score_threshold)
        order = idx[np.lexsort((idx, -flat[idx]))][: self.pre_nms_top_k]
        return order // self.num_classes, order % self.num_classes

    def postprocess(self, raw: np.ndarray) -> list[Detections]:
        """Decode + threshold + top-k + clip + class-aware NMS, per image (the reference).

        ``Detections.indices`` are flat candidate indices ``row * C + class``.
        """
        boxes, scores = self.decode(raw)
        out = []
        for b, s in zip(boxes, scores):
            rows, cls = self.candidates(s)
            cb = self.clip(b[rows])
            kept = nms(
                cb,
                s[rows, cls],
                cls,
                self.iou_threshold,
                self.score_threshold,
                self.max_detections,
            )
            flat = rows * self.num_classes + cls
            out.append(
                Detections(
                    kept.boxes, kept.scores, kept.labels, flat[kept.indices].astype(np.int64)
                )
            )
        return out
