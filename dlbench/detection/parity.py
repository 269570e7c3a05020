"""Parity of detections: does a native post-processing path keep the reference's boxes?

Example:
    >>> import numpy as np
    >>> from dlbench.detection import Detections
    >>> ref = Detections(np.array([[0.0, 0, 10, 10]]), np.array([0.9]), np.array([1]), np.array([4]))
    >>> out = Detections(np.array([[0.0, 0, 10, 10.0001]]), np.array([0.9]), np.array([1]))
    >>> r = compare_detections(ref, out)
    >>> r["ok"], r["matched_by"], r["matched"]
    (True, 'value', 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.detection.nms import Detections

__all__ = ["compare_detections"]


def compare_detections(
    reference: Detections,
    output: Detections,
    *,
    box_tolerance: float = 1e-2,
    score_tolerance: float = 1e-5,
) -> dict[str, Any]:
    """Compare one image's detections with the reference's; a JSON-safe record.

    Detections are matched by input index when both sides report indices, else by value
    (same label, score within ``score_tolerance``, every box coordinate within
    ``box_tolerance`` pixels; greedily in the reference's order). ``ok`` means the same set:
    equal counts, every reference detection matched, and matched boxes/scores within tolerance.

    Returns:
        ``{"reference_count", "output_count", "matched", "matched_by", "max_box_diff",
        "max_score_diff", "same_order", "ok"}`` (``max_*`` None when nothing matched).
    """
    rb = np.asarray(reference.boxes, np.float64).reshape(-1, 4)
    ob = np.asarray(output.boxes, np.float64).reshape(-1, 4)
    rs = np.asarray(reference.scores, np.float64).reshape(-1)
    os_ = np.asarray(output.scores, np.float64).reshape(-1)
    rl = np.asarray(reference.labels, np.int64).reshape(-1)
    ol = np.asarray(output.labels, np.int64).reshape(-1)
    pairs: list[tuple[int, int]] = []
    if reference.indices is not None and output.indices is not None:
        by = "index"
        where = {int(v): j for j, v in enumerate(np.asarray(output.indices).tolist())}
        for i, v in enumerate(np.asarray(reference.indices).tolist()):
            j = where.get(int(v))
            if j is not None and ol[j] == rl[i]:
                pairs.append((i, j))
    else:
        by = "value"
        used = np.zeros(len(os_), bool)
        for i in range(len(rs)):
            cand = (
                ~used
                & (ol == rl[i])
                & (np.abs(os_ - rs[i]) <= score_tolerance)
                & (np.abs(ob - rb[i]).max(axis=1, initial=0.0) <= box_tolerance)
            )
            hits = np.flatnonzero(cand)
            if hits.size:
                j = int(hits[np.argmin(np.abs(ob[hits] - rb[i]).max(axis=1))])
                used[j] = True
                pairs.append((i, j))
    box_diff = score_diff = None
    if pairs:
        ri = np.array([p[0] for p in pairs])
        oi = np.array([p[1] for p in pairs])
        box_diff = float(np.abs(ob[oi] - rb[ri]).max(initial=0.0))
        score_diff = float(np.abs(os_[oi] - rs[ri]).max(initial=0.0))
    same_order = len(pairs) == len(rs) and all(i == j for i, j in pairs)
    ok = (
        len(rs) == len(os_) == len(pairs)
        and (box_diff is None or box_diff <= box_tolerance)
        and (score_diff is None or score_diff <= score_tolerance)
    )
    return {
        "reference_count": int(len(rs)),
        "output_count": int(len(os_)),
        "matched": len(pairs),
        "matched_by": by,
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
        "same_order": bool(same_order),
        "ok": bool(ok),
    }
