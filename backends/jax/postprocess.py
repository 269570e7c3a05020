"""Native detection post-processing in JAX: jit-compiled, fixed-size decode, top-k and NMS.

Every shape is static: candidates are the ``pre_nms_top_k`` best scores (``jax.lax.top_k``:
equal values, lower index first), padded entries are masked, NMS runs a ``lax.fori_loop`` over
the sorted candidates on a precomputed suppression matrix, and the result is ``max_detections``
slots plus a valid count (``jnp.nonzero(..., size=...)``). Semantics match the float64
reference (:mod:`dlbench.detection`) in float32: score strictly above the threshold, stable
descending order (ties: lower index first), IoU on normalised corners (0 for an area <= 0),
suppression when IoU > threshold within a label.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dlbench.detection import Decoder, Detections, native_nms
from dlbench.detection.decode import BBOX_XFORM_CLIP

__all__ = ["TIES_UNORDERED", "nms", "nms_fixed", "postprocess"]

TIES_UNORDERED = False


def _iou(b: jax.Array) -> jax.Array:
    lo = jnp.minimum(b[:, :2], b[:, 2:])
    hi = jnp.maximum(b[:, :2], b[:, 2:])
    area = (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])
    lt = jnp.maximum(lo[:, None, :], lo[None, :, :])
    rb = jnp.minimum(hi[:, None, :], hi[None, :, :])
    wh = jnp.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, None] + area[None, :] - inter
    valid = (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return jnp.where(valid, inter / jnp.where(valid, union, 1.0), 0.0)


@partial(jax.jit, static_argnames=("max_detections",))
def nms_fixed(
    boxes: jax.Array,
    scores: jax.Array,
    labels: jax.Array,
    valid: jax.Array,
    iou_threshold: jax.Array,
    score_threshold: jax.Array,
    max_detections: int,
) -> tuple[jax.Array, jax.Array]:
    """Fixed-size class-aware NMS: ``(indices[max_detections], count)``; unused slots are -1.

    ``valid`` masks padded entries. Indices are by decreasing score, ties lower index first.
    """
    n = scores.shape[0]
    ok = valid & (scores > score_threshold)
    key = jnp.where(ok, scores, -jnp.inf)
    order = jnp.argsort(-key, stable=True)
    ok_sorted = ok[order]
    b = boxes[order]
    lab = labels[order]
    upper = jnp.arange(n)[:, None] < jnp.arange(n)[None, :]
    suppress = (_iou(b) > iou_threshold) & (lab[:, None] == lab[None, :]) & upper

    def body(i, alive):
        return jnp.where(alive[i], alive & ~suppress[i], alive)

    alive = jax.lax.fori_loop(0, n, body, ok_sorted)
    alive = alive & (jnp.cumsum(alive) <= max_detections)
    (pos,) = jnp.nonzero(alive, size=max_detections, fill_value=0)
    count = jnp.minimum(jnp.sum(alive), max_detections)
    slots = jnp.arange(max_detections) < count
    return jnp.where(slots, order[pos], -1), count


@native_nms
def nms(
    b: np.ndarray, s: np.ndarray, lab: np.ndarray, iou: float, score: float, k: int
) -> Detections:
    """Class-aware NMS with :func:`nms_fixed` (float32); inputs and outputs are NumPy."""
    if s.size == 0 or k == 0:
        e = np.zeros(0, np.int64)
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), e, e)
    b32, s32 = b.astype(np.float32), s.astype(np.float32)
    # pad to a power of two (at least 16) so that few input sizes compile
    n = s.size
    size = max(16, 1 << (n - 1).bit_length())
    pad = size - n
    idx, count = nms_fixed(
        jnp.asarray(np.pad(b32, ((0, pad), (0, 0)))),
        jnp.asarray(np.pad(s32, (0, pad))),
        jnp.asarray(np.pad(lab.astype(np.int32), (0, pad))),
        jnp.asarray(np.arange(size) < n),
        jnp.float32(iou),
        jnp.float32(max(score, float(np.finfo(np.float32).min))),
        k,
    )
    keep = np.asarray(idx)[: int(count)].astype(np.int64)
    return Detections(b32[keep], s32[keep], lab[keep], keep)


@partial(jax.jit, static_argnames=("kind", "hw", "top_k", "max_detections"))
def _postprocess_one(raw, priors, strides, kind, hw, top_k, score_t, iou_t, max_detections):
    if kind == "points":
        d = raw[:, :4] * strides[:, None]
        cx, cy = priors[:, 0], priors[:, 1]
        boxes = jnp.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=-1)
        scores = jnp.sqrt(jax.nn.sigmoid(raw[:, 5:]) * jax.nn.sigmoid(raw[:, 4:5]))
    else:
        wa = priors[:, 2] - priors[:, 0]
        ha = priors[:, 3] - priors[:, 1]
        cx = raw[:, 0] * wa + priors[:, 0] + 0.5 * wa
        cy = raw[:, 1] * ha + priors[:, 1] + 0.5 * ha
        w = jnp.exp(jnp.minimum(raw[:, 2], BBOX_XFORM_CLIP)) * wa
        h = jnp.exp(jnp.minimum(raw[:, 3], BBOX_XFORM_CLIP)) * ha
        boxes = jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
        scores = jax.nn.sigmoid(raw[:, 4:])
    c = scores.shape[1]
    flat = scores.reshape(-1)
    masked = jnp.where(flat > score_t, flat, -jnp.inf)
    k = min(top_k, flat.shape[0])
    vals, cand = jax.lax.top_k(masked, k)
    valid = vals > score_t
    rows, cls = cand // c, cand % c
    cb = boxes[rows]
    cb = jnp.stack(
        [
            jnp.clip(cb[:, 0], 0, hw[1]),
            jnp.clip(cb[:, 1], 0, hw[0]),
            jnp.clip(cb[:, 2], 0, hw[1]),
            jnp.clip(cb[:, 3], 0, hw[0]),
        ],
        axis=-1,
    )
    cs = flat[cand]
    idx, count = nms_fixed(cb, cs, cls, valid, iou_t, score_t, max_detections)
    safe = jnp.maximum(idx, 0)
    return cb[safe], cs[safe], cls[safe], cand[safe], count


def postprocess(decoder: Decoder, raw) -> list[Detections]:
    """Decode + threshold + top-k + clip + NMS per image, jit-compiled (fixed sizes).

    ``Detections.indices`` are flat candidate indices ``row * C + class``, as in the reference.
    """
    r = decoder.check_raw(np.asarray(raw)).astype(np.float32)
    priors = jnp.asarray(decoder.priors, jnp.float32)
    strides = jnp.asarray(decoder.prior_strides, jnp.float32)
    out = []
    for one in r:
        b, s, c, i, n = _postprocess_one(
            jnp.asarray(one),
            priors,
            strides,
            decoder.kind,
            decoder.hw,
            decoder.pre_nms_top_k,
            jnp.float32(decoder.score_threshold),
            jnp.float32(decoder.iou_threshold),
            decoder.max_detections,
        )
        n = int(n)
        out.append(
            Detections(
                np.asarray(b)[:n],
                np.asarray(s)[:n],
                np.asarray(c)[:n].astype(np.int64),
                np.asarray(i)[:n].astype(np.int64),
            )
        )
    return out
