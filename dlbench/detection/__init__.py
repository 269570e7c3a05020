"""Detection post-processing as a stage of its own: decode, NMS and letterbox (float64 NumPy).

This is the reference every backend's native path (``dlbench.backends.<fw>.postprocess``) is
tested against; it imports no framework.

- :class:`Decoder`: grid points (FCOS-style) or anchors (RetinaNet-style) + box transform to xyxy
  in input pixels, then threshold, top-k and class-aware NMS (:meth:`Decoder.postprocess`);
- :func:`nms`: class-aware greedy NMS with a documented tie order and COCO's 100-per-image cap;
- :func:`letterbox` / :func:`unletterbox_boxes`: into the model input and back to original pixels;
- :func:`compare_detections`: parity of a native path's detections with the reference's;
- :func:`to_coco_results`: kept detections -> COCO results (xywh, original pixels, category ids);
- :class:`DetectorOutputs`: how a user's wrapped detector's outputs become detections
  (``get_backend(fw).wrap(model, input_shape=..., detection=...)``, :mod:`.wrapped`).

Precision: the reference computes in float64, the native paths in float32. On the same raw
outputs they keep the same detections except where float32 rounding decides: a score within
rounding of ``score_threshold`` or of the top-k cut, or an IoU within rounding of
``iou_threshold``. Tie order (equal scores: lower input index first) is exact for the numpy,
torch and JAX paths; TensorFlow's combined NMS and ONNX Runtime's NonMaxSuppression leave the
order of equal scores unspecified (their module's ``TIES_UNORDERED`` is True).

Example:
    >>> import numpy as np
    >>> from dlbench.detection import nms
    >>> nms(np.array([[0, 0, 4, 4], [0, 0, 4, 5]]), np.array([0.5, 0.9])).indices.tolist()
    [1]
"""

from __future__ import annotations

from dlbench.detection.decode import (
    Decoder,
    check_input_size,
    decode_anchor_boxes,
    decode_point_boxes,
    grid_points,
    make_anchors,
    sigmoid,
)
from dlbench.detection.letterbox import (
    LetterboxParams,
    letterbox,
    letterbox_boxes,
    letterbox_params,
    unletterbox_boxes,
)
from dlbench.detection.nms import (
    COCO_MAX_DETECTIONS,
    Detections,
    box_iou,
    check_nms_inputs,
    native_nms,
    nms,
)
from dlbench.detection.parity import compare_detections
from dlbench.detection.results import to_coco_results
from dlbench.detection.wrapped import DetectorOutputs

__all__ = [
    "native_nms",
    "COCO_MAX_DETECTIONS",
    "Decoder",
    "Detections",
    "DetectorOutputs",
    "LetterboxParams",
    "box_iou",
    "check_input_size",
    "check_nms_inputs",
    "compare_detections",
    "decode_anchor_boxes",
    "decode_point_boxes",
    "grid_points",
    "letterbox",
    "letterbox_boxes",
    "letterbox_params",
    "make_anchors",
    "nms",
    "sigmoid",
    "to_coco_results",
    "unletterbox_boxes",
]
