"""Turning a model's outputs on a dataset into the task's metrics (framework-free).

The maths lives in :mod:`dlbench.metrics`; this module only picks the metrics for a task and
checks the outputs' shape and values first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.data.dataset import Dataset
from dlbench.errors import MetricError


def evaluate_outputs(
    dataset: Dataset, outputs: list[np.ndarray], targets: list[Any]
) -> dict[str, Any]:
    """Metrics for the concatenated ``outputs`` against ``targets`` for ``dataset``'s task.

    Classification: accuracy, top-5 accuracy (more than 5 classes), macro precision, recall and
    F1, and the confusion matrix. Regression: MSE, MAE and R².
    """
    from dlbench import metrics

    info = dataset.info
    if not outputs:
        return {}
    if info.task == "classification":
        scores = np.concatenate(outputs, axis=0)
        labels = np.concatenate([np.asarray(t) for t in targets], axis=0).astype(np.int64)
        if scores.ndim != 2 or scores.shape[1] != info.num_classes:
            raise MetricError(
                f"Expected model outputs of shape (N, {info.num_classes}) for {info.name}. "
                f"Received: {scores.shape}"
            )
        if not np.all(np.isfinite(scores)):
            bad = int(np.count_nonzero(~np.isfinite(scores).all(axis=1)))
            raise MetricError(f"Model outputs contain NaN or inf in {bad} of {len(scores)} rows")
        return metrics.classification_report_from_scores(labels, scores, info.num_classes)
    if info.task == "regression":
        pred = np.concatenate(outputs, axis=0).reshape(-1)
        true = np.concatenate([np.asarray(t) for t in targets], axis=0).reshape(-1)
        return {
            "mse": metrics.mse(true, pred),
            "mae": metrics.mae(true, pred),
            "r2": metrics.r2(true, pred),
        }
    raise MetricError(
        f"Expected a classification or regression dataset for the accuracy scenario. "
        f"Received: task={info.task!r} ({info.name}); detection models are evaluated with "
        "dlbench.metrics.coco_evaluate"
    )
