"""Native detection post-processing in ONNX Runtime: a small ONNX graph around the
``NonMaxSuppression`` op (opset 11).

The graph takes boxes ``(1, N, 4)`` and a per-class score matrix ``(1, C, N)`` (each candidate's
score in its label's row, ``-inf`` elsewhere) and returns the selected ``(batch, class, box)``
triples. ``center_point_box=0``: corners in either order (ORT normalises them, so xyxy works as
well as yxyx); per class ORT keeps scores ``> score_threshold`` and suppresses IoU
``> iou_threshold`` (0 for an area <= 0), like the reference (:mod:`dlbench.detection`).
``NonMaxSuppression`` has no total cap and returns no scores: the selected triples are merged by
decreasing score (ties: lower input index first) and cut to ``max_detections`` in NumPy, which
is a sort over at most ``C * max_detections`` rows.

The whole stage (decode, clip, threshold, ``TopK``, NMS) is one graph per decoder
(:func:`decoder_model`, cached as a session); merging the classes by score and the cap are
NumPy.

Tie order: ORT's CPU kernel orders a class's candidates by score alone, so which of two equal,
overlapping scores survives is unspecified (:data:`TIES_UNORDERED`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from dlbench.detection import Decoder, Detections, native_nms
from dlbench.detection.decode import BBOX_XFORM_CLIP

__all__ = ["TIES_UNORDERED", "decoder_model", "nms", "nms_model", "postprocess"]

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


@native_nms
def nms(
    b: np.ndarray, s: np.ndarray, lab: np.ndarray, iou: float, score: float, k: int
) -> Detections:
    """Class-aware NMS with ONNX ``NonMaxSuppression`` (float32); inputs and outputs are NumPy."""
    b32, s32 = b.astype(np.float32), s.astype(np.float32)
    keep = _run_nms(b32, s32, lab, iou, score, k)
    return Detections(b32[keep], s32[keep], lab[keep], keep)


def decoder_model(decoder: Decoder) -> onnx.ModelProto:
    """One image's whole post-processing as an ONNX graph (opset 11).

    ``raw (L, K)`` -> decode (the reference's formulas, priors as initializers) -> clip ->
    ``Where(score > threshold)`` -> ``TopK`` (sorted, ties lower index first) -> per-class score
    matrix (``OneHot``) -> ``NonMaxSuppression``. Outputs: candidate boxes ``(k, 4)``, scores
    ``(k,)``, flat indices ``(k,)`` (``row * C + class``) and the selected triples.
    """
    from onnx import numpy_helper as nh

    f = TensorProto.FLOAT
    h, w = decoder.hw
    c = decoder.num_classes
    k = min(decoder.pre_nms_top_k, decoder.num_rows * c)
    inits: dict[str, np.ndarray] = {
        "k": np.array([k], np.int64),
        "c": np.array(c, np.int64),
        "max_per_class": np.array([decoder.max_detections], np.int64),
        "iou": np.array([decoder.iou_threshold], np.float32),
        "thr": np.array(max(decoder.score_threshold, _F32_MIN), np.float32),
        "thr1": np.array([max(decoder.score_threshold, _F32_MIN)], np.float32),
        "neg_inf": np.array(-np.inf, np.float32),
        "lo": np.zeros(4, np.float32),
        "hi": np.array([w, h, w, h], np.float32),
        "flat_shape": np.array([-1], np.int64),
        "onehot_values": np.array([0.0, 1.0], np.float32),
        "half": np.array(0.5, np.float32),
        "clip": np.array(BBOX_XFORM_CLIP, np.float32),
        "zero": np.array(0.0, np.float32),
    }
    nodes = []

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def cols(start: int, end: int, name: str) -> str:
        inits[f"{name}__start"] = np.array([start], np.int64)
        inits[f"{name}__end"] = np.array([end], np.int64)
        inits[f"{name}__axes"] = np.array([1], np.int64)
        return node("Slice", ["raw", f"{name}__start", f"{name}__end", f"{name}__axes"], name)

    if decoder.kind == "points":
        pts = decoder.priors.astype(np.float32)
        inits["centres"] = np.concatenate([pts, pts], axis=1)
        inits["sign_stride"] = (
            np.array([-1, -1, 1, 1], np.float32)[None, :]
            * decoder.prior_strides.astype(np.float32)[:, None]
        )
        reg = cols(0, 4, "reg")
        d = node("Mul", [reg, "sign_stride"], "dist")
        boxes = node("Add", ["centres", d], "boxes")
        ctr = node("Sigmoid", [cols(4, 5, "ctr")], "ctr_p")
        cls = node("Sigmoid", [cols(5, 5 + c, "cls")], "cls_p")
        scores = node("Sqrt", [node("Mul", [cls, ctr], "prod")], "scores")
    else:
        a = decoder.priors.astype(np.float64)
        wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        inits["wh_a"] = np.stack([wa, ha], 1).astype(np.float32)
        inits["c_a"] = np.stack([a[:, 0] + 0.5 * wa, a[:, 1] + 0.5 * ha], 1).astype(np.float32)
        centre = node("Add", [node("Mul", [cols(0, 2, "dxy"), "wh_a"], "dxy_s"), "c_a"], "ctr_xy")
        dwh = node("Min", [cols(2, 4, "dwh"), "clip"], "dwh_c")
        size = node("Mul", [node("Exp", [dwh], "dwh_e"), "wh_a"], "size")
        half = node("Mul", [size, "half"], "half_size")
        lo = node("Sub", [centre, half], "lo_xy")
        hi = node("Add", [centre, half], "hi_xy")
        boxes = node("Concat", [lo, hi], "boxes", axis=1)
        scores = node("Sigmoid", [cols(4, 4 + c, "cls")], "scores")
    clipped = node("Max", [node("Min", [boxes, "hi"], "boxes_hi"), "lo"], "boxes_clip")
    flat = node("Reshape", [scores, "flat_shape"], "flat")
    ok = node("Greater", [flat, "thr"], "ok")
    masked = node("Where", [ok, flat, "neg_inf"], "masked")
    nodes.append(helper.make_node("TopK", [masked, "k"], ["cand_scores", "cand"], sorted=1))
    rows = node("Div", ["cand", "c"], "rows")
    cls_idx = node("Mod", ["cand", "c"], "cand_cls")
    cand_boxes = node("Gather", [clipped, rows], "cand_boxes", axis=0)
    onehot = node("OneHot", [cls_idx, "c", "onehot_values"], "onehot", axis=-1)
    is_cls = node("Greater", [onehot, "zero"], "is_cls")
    col = node("Unsqueeze", ["cand_scores"], "col", axes=[1])
    mat = node("Where", [is_cls, col, "neg_inf"], "mat")
    mat3 = node("Unsqueeze", [node("Transpose", [mat], "mat_t", perm=[1, 0])], "mat3", axes=[0])
    boxes3 = node("Unsqueeze", [cand_boxes], "boxes3", axes=[0])
    node(
        "NonMaxSuppression",
        [boxes3, mat3, "max_per_class", "iou", "thr1"],
        "selected",
        center_point_box=0,
    )
    graph = helper.make_graph(
        nodes,
        "dlbench_postprocess",
        [helper.make_tensor_value_info("raw", f, [decoder.num_rows, decoder.row_width])],
        [
            helper.make_tensor_value_info("cand_boxes", f, [k, 4]),
            helper.make_tensor_value_info("cand_scores", f, [k]),
            helper.make_tensor_value_info("cand", TensorProto.INT64, [k]),
            helper.make_tensor_value_info("selected", TensorProto.INT64, ["M", 3]),
        ],
        initializer=[nh.from_array(v, name=n) for n, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


_SESSIONS: dict[str, ort.InferenceSession] = {}


def _decoder_session(decoder: Decoder) -> ort.InferenceSession:
    import json

    key = json.dumps(decoder.to_dict(), sort_keys=True)
    if key not in _SESSIONS:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(
            decoder_model(decoder).SerializeToString(), so, providers=["CPUExecutionProvider"]
        )
    return _SESSIONS[key]


def postprocess(decoder: Decoder, raw) -> list[Detections]:
    """Decode + threshold + top-k + clip + NMS per image in one ONNX graph
    (:func:`decoder_model`); the classes are merged by score and capped in NumPy.

    ``Detections.indices`` are flat candidate indices ``row * C + class``, as in the reference.
    """
    r = decoder.check_raw(np.asarray(raw)).astype(np.float32)
    sess = _decoder_session(decoder)
    out = []
    for one in r:
        boxes, scores, cand, sel = sess.run(None, {"raw": np.ascontiguousarray(one)})
        idx = sel[:, 2].astype(np.int64)
        idx = idx[np.lexsort((idx, -scores[idx]))][: decoder.max_detections]
        cand = cand.astype(np.int64)
        out.append(Detections(boxes[idx], scores[idx], cand[idx] % decoder.num_classes, cand[idx]))
    return out
