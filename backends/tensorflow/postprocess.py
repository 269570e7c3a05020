"""Native detection post-processing in TensorFlow: decode, ``tf.math.top_k`` and
``tf.image.combined_non_max_suppression``.

Class-aware NMS is TF's combined NMS: each label's candidates become one column of a ``(1, N, C)``
score matrix (``-inf`` elsewhere) over shared boxes ``(1, N, 1, 4)``; per class it keeps scores
``> score_threshold`` and suppresses IoU ``> iou_threshold`` (IoU on normalised corners, 0 for an
area <= 0, as the reference), with ``clip_boxes=False`` so pixel boxes pass unchanged.

Differences from the float64 reference (:mod:`dlbench.detection`), documented and tested:
combined NMS returns boxes, scores and classes but **no input indices** (``Detections.indices``
is None; outputs are compared as a set of values), and it merges the classes with an unstable
sort, so the order of equal scores (and which of them survive a cut at ``max_detections``) is
unspecified (:data:`TIES_UNORDERED`). Scores and classes are float32 in TF; classes are
returned as int64.

Example:
    >>> import numpy as np
    >>> from dlbench.backends.tensorflow.postprocess import nms
    >>> nms(np.array([[0, 0, 4, 4], [0, 0, 4, 5]]), np.array([0.5, 0.9]), None, 0.5, 0.0, 9).scores
    array([0.9], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dlbench.detection import Decoder, Detections, native_nms
from dlbench.detection.decode import BBOX_XFORM_CLIP

__all__ = ["TIES_UNORDERED", "nms", "nms_tensors", "postprocess"]

#: equal scores come back in an unspecified order (combined NMS merges classes with std::sort)
TIES_UNORDERED = True
_F32_MIN = float(np.finfo(np.float32).min)


def nms_tensors(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    labels: tf.Tensor,
    num_classes: int,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(boxes, scores, classes, count)`` of combined NMS on ``N`` boxes with ``labels``."""
    onehot = tf.one_hot(labels, num_classes, on_value=True, off_value=False, dtype=tf.bool)
    mat = tf.where(onehot, scores[:, None], tf.constant(-np.inf, tf.float32))
    b, s, c, n = tf.image.combined_non_max_suppression(
        boxes[None, :, None, :],
        mat[None],
        max_output_size_per_class=max_detections,
        max_total_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=max(float(score_threshold), _F32_MIN),
        pad_per_class=False,
        clip_boxes=False,
    )
    return b[0], s[0], c[0], n[0]


@native_nms
def nms(
    b: np.ndarray, s: np.ndarray, lab: np.ndarray, iou: float, score: float, k: int
) -> Detections:
    """Class-aware NMS with TF's combined NMS (float32); inputs and outputs are NumPy."""
    if s.size == 0 or k == 0:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    ob, os_, oc, n = nms_tensors(
        tf.constant(b, tf.float32),
        tf.constant(s, tf.float32),
        tf.constant(lab, tf.int64),
        int(lab.max()) + 1,
        iou,
        score,
        k,
    )
    n = int(n)
    return Detections(ob.numpy()[:n], os_.numpy()[:n], oc.numpy()[:n].astype(np.int64))


def decode_tensors(decoder: Decoder, raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boxes ``(N, L, 4)`` and scores ``(N, L, C)`` as the reference decodes them, in float32."""
    priors = tf.constant(decoder.priors, tf.float32)
    if decoder.kind == "points":
        strides = tf.constant(decoder.prior_strides, tf.float32)
        d = raw[..., :4] * strides[:, None]
        cx, cy = priors[:, 0], priors[:, 1]
        boxes = tf.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1)
        scores = tf.sqrt(tf.sigmoid(raw[..., 5:]) * tf.sigmoid(raw[..., 4:5]))
    else:
        wa = priors[:, 2] - priors[:, 0]
        ha = priors[:, 3] - priors[:, 1]
        cx = raw[..., 0] * wa + (priors[:, 0] + 0.5 * wa)
        cy = raw[..., 1] * ha + (priors[:, 1] + 0.5 * ha)
        w = tf.exp(tf.minimum(raw[..., 2], BBOX_XFORM_CLIP)) * wa
        h = tf.exp(tf.minimum(raw[..., 3], BBOX_XFORM_CLIP)) * ha
        boxes = tf.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
        scores = tf.sigmoid(raw[..., 4:])
    return boxes, scores


def postprocess(decoder: Decoder, raw) -> list[Detections]:
    """Decode + threshold + top-k (``tf.math.top_k``: ties lower index first) + clip + combined
    NMS per image. ``Detections.indices`` is None (see the module docstring)."""
    r = tf.constant(decoder.check_raw(np.asarray(raw)), tf.float32)
    h, w = decoder.hw
    boxes, scores = decode_tensors(decoder, r)
    out = []
    for b, s in zip(tf.unstack(boxes), tf.unstack(scores)):
        flat = tf.reshape(s, [-1])
        masked = tf.where(flat > decoder.score_threshold, flat, -np.inf)
        k = min(decoder.pre_nms_top_k, int(flat.shape[0]))
        vals, cand = tf.math.top_k(masked, k=k, sorted=True)
        n_ok = int(tf.reduce_sum(tf.cast(vals > decoder.score_threshold, tf.int32)))
        cand = cand[:n_ok]
        if n_ok == 0:
            out.append(
                Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
            )
            continue
        c = decoder.num_classes
        rows, cls = cand // c, cand % c
        cb = tf.gather(b, rows)
        cb = tf.stack(
            [
                tf.clip_by_value(cb[:, 0], 0.0, float(w)),
                tf.clip_by_value(cb[:, 1], 0.0, float(h)),
                tf.clip_by_value(cb[:, 2], 0.0, float(w)),
                tf.clip_by_value(cb[:, 3], 0.0, float(h)),
            ],
            -1,
        )
        ob, os_, oc, n = nms_tensors(
            cb,
            tf.gather(flat, cand),
            tf.cast(cls, tf.int64),
            c,
            decoder.iou_threshold,
            decoder.score_threshold,
            decoder.max_detections,
        )
        n = int(n)
        out.append(Detections(ob.numpy()[:n], os_.numpy()[:n], oc.numpy()[:n].astype(np.int64)))
    return out
