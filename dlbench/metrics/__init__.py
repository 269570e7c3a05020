"""Metrics: classification, regression, calibration, COCO detection; one framework-free path.

Every metric is a streaming :class:`dlbench.metrics.base.Metric` (``update`` per batch,
``compute() -> dict``, ``reset()``, ``merge()``) with a functional twin for one-shot use; the
numbers are scikit-learn's (classification, regression) and pycocotools' (COCO), which the
tests check on random inputs. Importing this package imports NumPy only; scikit-learn and the
COCO engines load when a metric first computes.

Example:
    >>> import numpy as np
    >>> from dlbench import metrics
    >>> metrics.accuracy([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    0.6666666666666666
"""

from __future__ import annotations

from dlbench.metrics.bootstrap import bootstrap_ci
from dlbench.metrics.calibration import (
    CalibrationError,
    calibration_error,
    expected_calibration_error,
)
from dlbench.metrics.classification import (
    Accuracy,
    ConfusionMatrix,
    F1Score,
    LogLoss,
    Precision,
    Recall,
    RocAuc,
    TopKAccuracy,
    accuracy,
    classification_report,
    classification_report_from_scores,
    confusion_matrix,
    f1,
    log_loss,
    precision,
    recall,
    roc_auc,
    top_k_accuracy,
)
from dlbench.metrics.coco.evaluate import (
    STAT_KEYS,
    CocoDetections,
    CocoGroundTruth,
    coco_evaluate,
    convert_boxes,
    detections_from_arrays,
    load_ground_truth,
)
from dlbench.metrics.coco.metric import CocoMeanAveragePrecision
from dlbench.metrics.groups import GroupMetric, group_metric
from dlbench.metrics.regression import (
    MeanAbsoluteError,
    MeanSquaredError,
    R2Score,
    mae,
    mse,
    r2,
)

__all__ = [
    "Accuracy",
    "TopKAccuracy",
    "Precision",
    "Recall",
    "F1Score",
    "ConfusionMatrix",
    "RocAuc",
    "LogLoss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "R2Score",
    "CalibrationError",
    "CocoMeanAveragePrecision",
    "GroupMetric",
    "accuracy",
    "top_k_accuracy",
    "precision",
    "recall",
    "f1",
    "confusion_matrix",
    "roc_auc",
    "log_loss",
    "mse",
    "mae",
    "r2",
    "calibration_error",
    "expected_calibration_error",
    "classification_report",
    "classification_report_from_scores",
    "bootstrap_ci",
    "group_metric",
    "coco_evaluate",
    "load_ground_truth",
    "convert_boxes",
    "detections_from_arrays",
    "CocoGroundTruth",
    "CocoDetections",
    "STAT_KEYS",
]
