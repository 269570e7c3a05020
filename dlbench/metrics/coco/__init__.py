"""COCO detection metrics: the evaluator (pycocotools-identical numbers), the streaming metric,
and a generator of COCO-format ground truth and detections for tests and benchmarks."""

from dlbench.metrics.coco.evaluate import (  # noqa: F401
    STAT_KEYS,
    CocoDetections,
    CocoGroundTruth,
    coco_evaluate,
    convert_boxes,
    detections_from_arrays,
)
from dlbench.metrics.coco.metric import CocoMeanAveragePrecision  # noqa: F401
