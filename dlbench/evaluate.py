"""Turning a model's outputs on a dataset into the task's metrics (framework-free)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.dataset import Dataset
from dlbench.errors import MetricError


def classification_metrics(
    scores: np.ndarray, labels: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Accuracy, top-5 accuracy (when there are more than 5 classes), macro precision, recall
    and F1, and the confusion matrix, from (N, C) scores and (N,) integer labels."""
    try:
        from dlbench.metrics import classification_summary
    except ImportError:  # metrics package not present: compute the basics with scikit-learn
        classification_summary = None
    if classification_summary is not None:
        return classification_summary(labels, scores, num_classes=num_classes)
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    pred = scores.argmax(axis=1)
    classes = np.arange(num_classes)
    p, r, f, _ = precision_recall_fscore_support(
        labels, pred, labels=classes, average="macro", zero_division=0
    )
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(labels, pred)),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
        "confusion_matrix": confusion_matrix(labels, pred, labels=classes).tolist(),
    }
    if num_classes > 5:
        top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        out["top5_accuracy"] = float(np.mean((top5 == labels[:, None]).any(axis=1)))
    return out


def evaluate_outputs(
    dataset: Dataset, outputs: list[np.ndarray], targets: list[Any]
) -> dict[str, Any]:
    """Metrics for the concatenated ``outputs`` against ``targets`` for ``dataset``'s task."""
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
        return classification_metrics(scores, labels, info.num_classes)
    if info.task == "regression":
        from dlbench.metrics import regression_summary

        pred = np.concatenate(outputs, axis=0).reshape(-1)
        true = np.concatenate([np.asarray(t) for t in targets], axis=0).reshape(-1)
        return regression_summary(true, pred)
    raise MetricError(f"No metrics for task {info.task!r} in the accuracy scenario yet")
