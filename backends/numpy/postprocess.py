"""Post-processing on the NumPy backend: the float64 reference itself (:mod:`dlbench.detection`)."""

from __future__ import annotations

import numpy as np

from dlbench.detection import Decoder, Detections
from dlbench.detection import nms as _nms

__all__ = ["nms", "postprocess"]

#: every tie is broken by the documented order (score descending, then lower index)
TIES_UNORDERED = False


#: :func:`dlbench.detection.nms` itself (float64)
nms = _nms


def postprocess(decoder: Decoder, raw: np.ndarray) -> list[Detections]:
    """:meth:`dlbench.detection.Decoder.postprocess` (float64)."""
    return decoder.postprocess(raw)
