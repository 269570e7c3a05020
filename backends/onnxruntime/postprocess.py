"""Native detection post-processing in ONNX Runtime: a small ONNX graph around the
``NonMaxSuppression`` op (opset 11).

The graph takes boxes ``(1, N, 4)`` and a per-class score matrix ``(1, C, N)`` (each candidate's
score in its label's row, ``-inf`` elsewhere) and returns the selected ``(batch, class, box)``
triples. ``center_point_box=0``: corners in either order (ORT normalises them, so xyxy works as
well as yxyx); per class ORT keeps scores ``> score_threshold`` and suppresses IoU
``> iou_threshold`` (0 for an area <= 0), like the reference (:mod:`dlbench.detection`).
``NonMaxSuppression`` has no total cap and returns no scores: the selected triples are merged by
decreasing score (ties: lower input index first) and cut to ``max_detections`` in NumPy, which
is a gather and a sort over at most ``C * max_detections`` rows.

Decoding and top-k run in float32 NumPy (the same formulas as the reference); only NMS is native.

Tie order: ORT's CPU kernel orders a class's candidates by score alone, so which of two equal,
overlapping scores survives is unspecified (:data:`TIES_UNORDERED`).

Example:
    >>> import numpy as np
    >>> from dlbench.backends.onnxruntime.postprocess import nms
    >>> nms(np.array([[0, 0, 4, 4], [0, 0, 4, 5]]), np.array([0.5, 0.9]), None, 0.5, 0.0, 9).indices
    array([1])
"""

from __future__ import annotations

from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from dlbench.detection import Decoder, Detections, check_nms_inputs
from dlbench.detection.decode import decode_anchor_boxes, decode_point_boxes

__all__ = ["TIES_UNORDERED", "nms", "nms_model", "postprocess"]

TIES_UNORDERED = True
_F32_MIN = float(np.finfo(np.float32).min)


def nms_model() -> onnx.ModelProto:
    """The ONNX graph: ``NonMaxSuppression(boxes, scores, max_per_class, iou, score)``."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    node = helper.make_node(
        "NonMaxSuppression",
        ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold"],
        ["selected"],
        center_point_box=0,
    )
    graph = helper.make_graph(
        [node],
        "dlbench_nms",
        [
            helper.make_tensor_value_info("boxes", f, [1, "N", 4]),
            helper.make_tensor_value_info("scores", f, [1, "C", "N"]),
            helper.make_tensor_value_info("max_output_boxes_per_class", i64, [1]),
            helper.make_tensor_value_info("iou_threshold", f, [1]),
            helper.make_tensor_value_info("score_threshold", f, [1]),
        ],
        [helper.make_tensor_value_info("selected", i64, ["M", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


@cache
def _session() -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(
        nms_model().SerializeToString(), so, providers=["CPUExecutionProvider"]
    )


def _run_nms(
    b32: np.ndarray,
    s32: np.ndarray,
    lab: np.ndarray,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> np.ndarray:
    """Kept input indices, by decreasing score then increasing index, cut to the cap."""
    if s32.size == 0 or max_detections == 0:
        return np.zeros(0, np.int64)
    c = int(lab.max()) + 1
    mat = np.full((1, c, s32.size), -np.inf, np.float32)
    mat[0, lab, np.arange(s32.size)] = s32
    (sel,) = _session().run(
        None,
        {
            "boxes": np.ascontiguousarray(b32[None], np.float32),
            "scores": mat,
            "max_output_boxes_per_class": np.array([max_detections], np.int64),
            "iou_threshold": np.array([iou_threshold], np.float32),
            "score_threshold": np.array([max(score_threshold, _F32_MIN)], np.float32),
        },
    )
    idx = sel[:, 2].astype(np.int64)
    idx = idx[np.lexsort((idx, -s32[idx]))]
    return idx[:max_detections]


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> Detections:
    """Class-aware NMS with ONNX ``NonMaxSuppression`` (float32); inputs and outputs are NumPy."""
    b, s, lab = check_nms_inputs(
        boxes, scores, labels, iou_threshold, score_threshold, max_detections
    )
    b32, s32 = b.astype(np.float32), s.astype(np.float32)
    keep = _run_nms(
        b32, s32, lab, float(iou_threshold), float(score_threshold), int(max_detections)
    )
    return Detections(b32[keep], s32[keep], lab[keep], keep)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def postprocess(decoder: Decoder, raw) -> list[Detections]:
    """Decode + threshold + top-k + clip in float32 NumPy, then ONNX NMS, per image.

    ``Detections.indices`` are flat candidate indices ``row * C + class``, as in the reference.
    """
    r = decoder.check_raw(np.asarray(raw)).astype(np.float32)
    h, w = decoder.hw
    c = decoder.num_classes
    out = []
    for one in r:
        if decoder.kind == "points":
            boxes = decode_point_boxes(decoder.priors, decoder.prior_strides, one[:, :4])
            scores = np.sqrt(_sigmoid(one[:, 5:]) * _sigmoid(one[:, 4:5]))
        else:
            boxes = decode_anchor_boxes(decoder.priors, one[:, :4])
            scores = _sigmoid(one[:, 4:])
        boxes = boxes.astype(np.float32)
        flat = scores.reshape(-1)
        idx = np.flatnonzero(flat > np.float32(decoder.score_threshold))
        cand = idx[np.lexsort((idx, -flat[idx]))][: decoder.pre_nms_top_k]
        rows, cls = cand // c, cand % c
        cb = boxes[rows]
        cb[:, 0::2] = np.clip(cb[:, 0::2], 0, w)
        cb[:, 1::2] = np.clip(cb[:, 1::2], 0, h)
        cs = flat[cand]
        keep = _run_nms(
            cb,
            cs,
            cls.astype(np.int64),
            decoder.iou_threshold,
            decoder.score_threshold,
            decoder.max_detections,
        )
        out.append(Detections(cb[keep], cs[keep], cls[keep].astype(np.int64), cand[keep]))
    return out
