"""Native detection post-processing in PyTorch: tensor decode, top-k and class-aware NMS.

Same semantics as the float64 reference (:mod:`dlbench.detection`), computed in float32 on the
tensors' device: candidates ``score > score_threshold`` sorted by a *stable* descending sort
(equal scores: lower index first), IoU on normalised corners (0 when an area is <= 0), suppression
when IoU > ``iou_threshold`` within a label, the kept detections cut to ``max_detections``.

torchvision's ``batched_nms`` is not used: it does not normalise inverted corners, has no
zero-area rule and documents its tie order as unspecified, and the registry's torchvision wheels
do not import beside the CPU torch pinned here.
"""

from __future__ import annotations

import numpy as np
import torch

from dlbench.detection import Decoder, Detections, native_nms
from dlbench.detection.decode import BBOX_XFORM_CLIP

__all__ = ["TIES_UNORDERED", "nms", "nms_tensors", "postprocess"]

#: every tie is broken by the documented order
TIES_UNORDERED = False


def _iou(b: torch.Tensor) -> torch.Tensor:
    lo = torch.minimum(b[:, :2], b[:, 2:])
    hi = torch.maximum(b[:, :2], b[:, 2:])
    area = (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])
    lt = torch.maximum(lo[:, None, :], lo[None, :, :])
    rb = torch.minimum(hi[:, None, :], hi[None, :, :])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, None] + area[None, :] - inter
    valid = (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return torch.where(valid, inter / torch.where(valid, union, torch.ones_like(union)), 0.0)


def nms_tensors(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> torch.Tensor:
    """Indices (int64, by decreasing score, ties lower index first) kept by class-aware NMS."""
    cand = torch.nonzero(scores > score_threshold).flatten()
    if cand.numel() == 0 or max_detections == 0:
        return cand[:0]
    _, order = torch.sort(scores[cand], descending=True, stable=True)
    cand = cand[order]
    b = boxes[cand]
    lab = labels[cand]
    suppress = (_iou(b) > iou_threshold) & (lab[:, None] == lab[None, :])
    suppress = torch.triu(suppress, diagonal=1).cpu()
    alive = torch.ones(cand.numel(), dtype=torch.bool)
    kept: list[int] = []
    for i in range(cand.numel()):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == max_detections:
            break
        alive &= ~suppress[i]
    return cand[torch.as_tensor(kept, dtype=torch.int64, device=cand.device)]


@native_nms
def nms(
    b: np.ndarray, s: np.ndarray, lab: np.ndarray, iou: float, score: float, k: int
) -> Detections:
    """Class-aware NMS on torch tensors (float32); inputs and outputs are NumPy."""
    with torch.inference_mode():
        tb = torch.as_tensor(b, dtype=torch.float32)
        ts = torch.as_tensor(s, dtype=torch.float32)
        keep = nms_tensors(
            tb,
            ts,
            torch.as_tensor(lab),
            iou,
            score,
            k,
        )
        idx = keep.numpy().astype(np.int64)
        return Detections(tb[keep].numpy(), ts[keep].numpy(), lab[idx], idx)


def decode_tensors(decoder: Decoder, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes ``(N, L, 4)`` and scores ``(N, L, C)`` as the reference decodes them, in float32."""
    priors = torch.as_tensor(decoder.priors, dtype=raw.dtype, device=raw.device)
    if decoder.kind == "points":
        strides = torch.as_tensor(decoder.prior_strides, dtype=raw.dtype, device=raw.device)
        d = raw[..., :4] * strides[:, None]
        cx, cy = priors[:, 0], priors[:, 1]
        boxes = torch.stack(
            [cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], dim=-1
        )
        scores = torch.sqrt(torch.sigmoid(raw[..., 5:]) * torch.sigmoid(raw[..., 4:5]))
    else:
        wa = priors[:, 2] - priors[:, 0]
        ha = priors[:, 3] - priors[:, 1]
        cxa = priors[:, 0] + 0.5 * wa
        cya = priors[:, 1] + 0.5 * ha
        cx = raw[..., 0] * wa + cxa
        cy = raw[..., 1] * ha + cya
        w = torch.exp(raw[..., 2].clamp(max=BBOX_XFORM_CLIP)) * wa
        h = torch.exp(raw[..., 3].clamp(max=BBOX_XFORM_CLIP)) * ha
        boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        scores = torch.sigmoid(raw[..., 4:])
    return boxes, scores


def postprocess(decoder: Decoder, raw) -> list[Detections]:
    """Decode + threshold + top-k + clip + NMS per image with torch ops (``raw``: NumPy or tensor).

    ``Detections.indices`` are flat candidate indices ``row * C + class``, as in the reference.
    """
    if isinstance(raw, torch.Tensor):
        raw_t = raw.to(torch.float32)
    else:
        raw_t = torch.as_tensor(decoder.check_raw(raw), dtype=torch.float32)
    if raw_t.ndim == 2:
        raw_t = raw_t[None]
    decoder.check_raw(np.empty((1, *raw_t.shape[1:]), np.float32))
    h, w = decoder.hw
    c = decoder.num_classes
    out = []
    with torch.inference_mode():
        boxes, scores = decode_tensors(decoder, raw_t)
        for b, s in zip(boxes, scores):
            flat = s.reshape(-1)
            cand = torch.nonzero(flat > decoder.score_threshold).flatten()
            _, order = torch.sort(flat[cand], descending=True, stable=True)
            cand = cand[order][: decoder.pre_nms_top_k]
            rows, cls = cand // c, cand % c
            cb = b[rows].clone()
            cb[:, 0::2] = cb[:, 0::2].clamp(0, w)
            cb[:, 1::2] = cb[:, 1::2].clamp(0, h)
            cs = flat[cand]
            keep = nms_tensors(
                cb,
                cs,
                cls,
                decoder.iou_threshold,
                decoder.score_threshold,
                decoder.max_detections,
            )
            out.append(
                Detections(
                    cb[keep].cpu().numpy(),
                    cs[keep].cpu().numpy(),
                    cls[keep].cpu().numpy().astype(np.int64),
                    cand[keep].cpu().numpy().astype(np.int64),
                )
            )
    return out
