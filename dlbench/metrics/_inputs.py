"""Input checks and conversions shared by the classification metrics (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError


def as_labels(y: Any, name: str = "y_true") -> np.ndarray:
    """A 1-D int64 array of class labels; floats must hold whole numbers."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:  # keras-style (N, 1) labels
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise MetricError(
            f"Expected {name} as 1-D class labels of shape (N,). Received shape {arr.shape}"
        )
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        labels = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise MetricError(
                f"Expected integer class labels in {name}. Received non-integer floats "
                f"(scores belong in y_pred as an (N, C) array)"
            )
        labels = arr.astype(np.int64)
    else:
        raise MetricError(f"Expected integer class labels in {name}. Received dtype {arr.dtype}")
    if labels.size and labels.min() < 0:
        raise MetricError(f"Expected class labels >= 0 in {name}. Received: {int(labels.min())}")
    return labels


def as_scores(y: Any, name: str = "y_score") -> np.ndarray:
    """A 2-D float64 (N, C) array of finite scores."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 2:
        raise MetricError(
            f"Expected {name} as an (N, C) array of scores. Received shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise MetricError(f"Expected finite values in {name}. Received NaN or inf")
    return arr


def labels_from_pred(y_pred: Any) -> np.ndarray:
    """Labels from ``y_pred``: 1-D labels as they are, (N, C) scores by argmax (first max wins)."""
    arr = np.asarray(y_pred)
    if arr.ndim == 2 and arr.shape[1] > 1:
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise MetricError("Expected finite scores in y_pred. Received NaN or inf")
        return np.argmax(arr, axis=1).astype(np.int64)
    return as_labels(arr, "y_pred")


def check_same_length(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if len(y_true) != len(y_pred):
        raise MetricError(
            f"Expected y_true and y_pred with the same number of samples. "
            f"Received {len(y_true)} and {len(y_pred)}"
        )


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def is_probability(x: np.ndarray, atol: float = 1e-6) -> bool:
    """Rows in [0, 1] that sum to 1 (within ``atol``)."""
    if x.size == 0:
        return True
    return bool(
        (x >= 0).all() and (x <= 1).all() and np.allclose(x.sum(axis=1), 1.0, rtol=0, atol=atol)
    )


def to_probabilities(scores: np.ndarray, from_logits: bool | None) -> np.ndarray:
    """Scores as probabilities: softmax when ``from_logits`` is true, or when it is ``None``
    (auto) and the rows are not already probability distributions."""
    if from_logits is None:
        from_logits = not is_probability(scores)
    return softmax(scores) if from_logits else scores
