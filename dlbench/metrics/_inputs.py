"""Input checks and conversions shared by the classification metrics (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError


def _multilabel_error(arr: np.ndarray, name: str) -> MetricError | None:
    """A clear error for a 2-D 0/1 indicator array (multilabel or one-hot), else None."""
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.dtype.kind not in "biuf" or not arr.size:
        return None
    if not np.isin(arr, (0, 1)).all():
        return None
    if (arr.sum(axis=1) == 1).all():
        return MetricError(
            f"Expected {name} as 1-D class labels of shape (N,). Received one-hot rows of shape "
            f"{arr.shape}: pass {name}.argmax(axis=1)"
        )
    return MetricError(
        f"Multilabel input is not supported: {name} of shape {arr.shape} holds 0/1 indicator "
        "rows with zero or several labels per sample. dlbench's classification metrics are "
        "single-label (multiclass or binary); score each label as its own binary problem"
    )


def as_labels(y: Any, name: str = "y_true") -> np.ndarray:
    """A 1-D int64 array of class labels; floats must hold whole numbers.

    Raises:
        MetricError: multilabel (or one-hot) indicator rows, with what to pass instead.
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:  # keras-style (N, 1) labels
        arr = arr[:, 0]
    if (err := _multilabel_error(arr, name)) is not None:
        raise err
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
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "biu":
        err = _multilabel_error(arr, "y_pred")
        if err is not None and not (arr.sum(axis=1) == 1).all():
            raise err  # 0/1 integer rows with several labels: a multilabel prediction
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


#: Rows of [0, 1] values whose sums are this close to 1, but not within the tolerance of their
#: dtype, may be rounded probabilities or small logits: refused rather than guessed.
AMBIGUOUS_SUM = 0.05


def probability_atol(dtype: Any) -> float:
    """How far from 1 a row of probabilities stored as ``dtype`` may sum: ``16 x eps`` of a
    float dtype, at least 1e-5 (a float32 softmax over thousands of classes) and at most 2e-2
    (bfloat16); 1e-5 for anything else."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        return 1e-5
    try:
        eps = float(np.finfo(dt).eps)
    except (TypeError, ValueError):  # e.g. ml_dtypes' bfloat16 under an older NumPy
        eps = 2.0**-7 if dt.itemsize == 2 else 2.0**-23
    return float(min(2e-2, max(1e-5, 16 * eps)))


def is_probability(x: np.ndarray, atol: float = 1e-5) -> bool:
    """Rows in [0, 1] that sum to 1 (within ``atol``)."""
    if x.size == 0:
        return True
    return bool(
        (x >= 0).all() and (x <= 1).all() and np.allclose(x.sum(axis=1), 1.0, rtol=0, atol=atol)
    )


def looks_like_logits(x: np.ndarray, atol: float = 1e-5, name: str = "y_pred") -> bool:
    """The ``from_logits=None`` (auto) decision for (N, C) scores.

    Logits when a value lies outside [0, 1] or a row sums far from 1 (more than
    :data:`AMBIGUOUS_SUM`); probabilities when every row sums to 1 within ``atol`` (see
    :func:`probability_atol`).

    Raises:
        MetricError: values in [0, 1] whose rows sum to 1 only roughly (beyond ``atol``, within
            :data:`AMBIGUOUS_SUM`): rounded or reduced-precision probabilities, or logits? The
            message asks for ``from_logits``.
    """
    if x.size == 0:
        return False
    if (x < 0).any() or (x > 1).any():
        return True
    dev = float(np.abs(x.sum(axis=1) - 1.0).max())
    if dev <= atol:
        return False
    if dev <= AMBIGUOUS_SUM:
        raise MetricError(
            f"Cannot tell whether {name} holds probabilities or logits: its values lie in [0, 1] "
            f"and its rows sum to 1 only within {dev:.2g} (probabilities of this dtype sum to 1 "
            f"within {atol:.2g}). Pass from_logits=False for rounded or reduced-precision "
            "probabilities, from_logits=True for logits"
        )
    return True


def to_probabilities(
    scores: np.ndarray, from_logits: bool | None, atol: float = 1e-5, name: str = "y_pred"
) -> np.ndarray:
    """Scores as probabilities: softmax when ``from_logits`` is true, or when it is ``None``
    (auto) and :func:`looks_like_logits` says so. ``atol`` is :func:`probability_atol` of the
    dtype the scores came in."""
    if from_logits is None:
        from_logits = looks_like_logits(scores, atol, name)
    return softmax(scores) if from_logits else scores


def check_from_logits(from_logits: Any) -> bool | None:
    if (
        from_logits not in (None, True, False)
        or isinstance(from_logits, (int, float))
        and (not isinstance(from_logits, bool))
    ):
        raise MetricError(f"Expected from_logits in (None, True, False). Received: {from_logits!r}")
    return from_logits


def _check_num_classes(num_classes: int | None) -> int | None:
    if num_classes is not None and (
        not isinstance(num_classes, (int, np.integer)) or num_classes < 1
    ):
        raise MetricError(
            f"Expected num_classes to be a positive int or None. Received: {num_classes!r}"
        )
    return None if num_classes is None else int(num_classes)
