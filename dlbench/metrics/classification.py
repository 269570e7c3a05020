"""Classification metrics: streaming classes and functional twins, scikit-learn's numbers.

Every class takes ``update(y_true, y_pred)`` where ``y_true`` holds class labels (N,) and
``y_pred`` holds either labels (N,) or scores (N, C) (logits or probabilities; the label is
the argmax, first maximum winning). The streaming state is dlbench's (a confusion matrix,
hit counts, or the accumulated scores); ``compute()`` hands that state to scikit-learn
wherever scikit-learn computes the metric, so the numbers are scikit-learn's.

Label metrics follow scikit-learn's conventions: ``average`` in ``"micro"``, ``"macro"``,
``"weighted"``, ``"none"`` or ``None`` (per class) or ``"binary"``; ``zero_division`` in
``"warn"`` (acts as 0), ``0``, ``1``, ``nan``; macro averages over the labels present in
``y_true`` or ``y_pred`` unless ``labels`` is given. The default, ``average="auto"``, is
scikit-learn's ``"binary"`` (the score of ``pos_label``) when the input is binary (no label
above 1, at most two classes, no ``labels``) and ``"macro"`` otherwise (where scikit-learn's
default would raise). Per-class results list the classes of ``labels``, else ``range(num_classes)``
when ``num_classes`` is given, else the classes present, in increasing order; the streaming
classes return that list as ``labels`` next to the values. Multilabel (0/1 indicator rows)
input is refused with a clear error.

Scores: ``from_logits=None`` (auto) treats (N, C) scores as probabilities when every row sums
to 1 within a tolerance set by the input's dtype (16 x eps: 1e-5 for float64 and float32,
1.6e-2 for float16), as logits when a value lies outside [0, 1] or a row sums far from 1, and
refuses rows of [0, 1] values that sum to 1 only roughly (rounded probabilities?) with a
message asking for ``from_logits``. ``from_logits`` is honoured by every score metric, the
binary ROC AUC included: binary logits are ranked by the positive class's margin.

Example:
    >>> import numpy as np
    >>> m = Accuracy()
    >>> m.update([0, 1, 2], np.array([[3.0, 1, 0], [0, 2, 1], [1, 0, 0]]))
    >>> m.compute()
    {'accuracy': 0.6666666666666666}
    >>> f1([0, 1, 1, 2], [0, 1, 2, 2], average="macro")
    0.7777777777777777
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics._inputs import (
    _check_num_classes,
    as_labels,
    as_scores,
    check_same_length,
    labels_from_pred,
)
from dlbench.metrics.base import Metric
from dlbench.metrics.scores import (  # noqa: F401  (public here too)
    LogLoss,
    RocAuc,
    TopKAccuracy,
    _log_loss_compute,
    _roc_auc_compute,
    _top_k_hits,
)

AVERAGES = ("micro", "macro", "weighted", "none", "binary", "auto")


def _check_average(average: str | None) -> str:
    if average is None:
        average = "none"
    if average not in AVERAGES:
        raise MetricError(f"Expected average in {AVERAGES}. Received: average={average!r}")
    return average


def _grow(matrix: np.ndarray, size: int) -> np.ndarray:
    if size <= matrix.shape[0]:
        return matrix
    out = np.zeros((size, size), matrix.dtype)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def _confusion_update(
    y_true: Any, y_pred: Any, num_classes: int | None, matrix: np.ndarray | None = None
) -> np.ndarray:
    """Add a batch to a (C, C) count matrix (rows: true class, columns: predicted class)."""
    t = as_labels(y_true, "y_true")
    pred_arr = np.asarray(y_pred)
    p = labels_from_pred(pred_arr)
    check_same_length(t, p)
    if pred_arr.ndim == 2 and pred_arr.shape[1] > 1:
        width = pred_arr.shape[1]
        if num_classes is not None and width != num_classes:
            raise MetricError(
                f"Expected y_pred scores with num_classes={num_classes} columns. "
                f"Received shape {pred_arr.shape}"
            )
        num_classes = num_classes or width
    seen = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if num_classes is not None and seen > num_classes:
        raise MetricError(
            f"Expected labels in [0, {num_classes}) for num_classes={num_classes}. "
            f"Received label {seen - 1}"
        )
    size = max(num_classes or 0, seen, 0 if matrix is None else matrix.shape[0])
    counts = np.bincount(t * size + p, minlength=size * size).reshape(size, size)
    if matrix is None:
        return counts.astype(np.int64)
    return _grow(matrix, size) + counts


def _cells(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The confusion counts as (true, pred, weight) triples: scikit-learn's input from our state."""
    t, p = np.nonzero(matrix)
    return t, p, matrix[t, p].astype(np.float64)


def _sk_labels(labels: Sequence[int] | None) -> list[int] | None:
    return None if labels is None else [int(v) for v in labels]


def _prf_compute(
    matrix: np.ndarray,
    which: str,
    average: str,
    labels: Sequence[int] | None,
    zero_division: Any,
    pos_label: int,
    beta: float = 1.0,
) -> Any:
    from sklearn.metrics import fbeta_score, precision_score, recall_score

    t, p, w = _cells(matrix)
    if w.size == 0:
        return float("nan")
    average = _resolve_average(average, matrix, labels)
    kw: dict[str, Any] = {
        "labels": _sk_labels(labels),
        "average": None if average == "none" else average,
        "zero_division": zero_division,
        "sample_weight": w,
        "pos_label": pos_label,
    }
    try:
        if which == "precision":
            value = precision_score(t, p, **kw)
        elif which == "recall":
            value = recall_score(t, p, **kw)
        else:
            value = fbeta_score(t, p, beta=beta, **kw)
    except ValueError as e:  # e.g. average="binary" on more than two classes
        raise MetricError(f"scikit-learn rejected the {which} inputs: {e}") from None
    return np.asarray(value).tolist() if average == "none" else float(value)


def _resolve_average(average: str, matrix: np.ndarray, labels: Sequence[int] | None) -> str:
    """``"auto"``: scikit-learn's ``"binary"`` for binary input, ``"macro"`` otherwise."""
    if average != "auto":
        return average
    return "binary" if labels is None and matrix.shape[0] <= 2 else "macro"


def _per_class_labels(num_classes: int | None, labels: Sequence[int] | None) -> list[int] | None:
    """The classes a per-class result lists: ``labels``, else ``range(num_classes)``."""
    if labels is not None:
        return [int(v) for v in labels]
    return None if num_classes is None else list(range(num_classes))


def _present_labels(matrix: np.ndarray, labels: Sequence[int] | None) -> list[int]:
    if labels is not None:
        return [int(v) for v in labels]
    return np.flatnonzero(matrix.sum(0) + matrix.sum(1)).tolist()


class _ConfusionBased(Metric):
    """Shared state: a growing (C, C) confusion matrix."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        c = self.num_classes or 0
        self.add_state("confmat", np.zeros((c, c), np.int64), "sum")

    def update(self, y_true: Any, y_pred: Any) -> None:
        self.confmat = _confusion_update(y_true, y_pred, self.num_classes, self.confmat)

    def merge(self, other: Metric) -> None:
        if isinstance(other, _ConfusionBased) and type(other) is type(self):
            size = max(self.confmat.shape[0], other.confmat.shape[0])
            self.confmat = _grow(self.confmat, size)
            other.confmat = _grow(other.confmat, size)
        super().merge(other)


class Accuracy(_ConfusionBased):
    """Share of samples whose predicted label equals the true label (``accuracy_score``).

    Example:
        >>> m = Accuracy(); m.update([0, 1], [0, 0]); m.compute()
        {'accuracy': 0.5}
    """

    name = "accuracy"

    def compute(self) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score

        t, p, w = _cells(self.confmat)
        value = float(accuracy_score(t, p, sample_weight=w)) if w.size else float("nan")
        return {"accuracy": value}


class _PRF(_ConfusionBased):
    which = "f1"

    def __init__(
        self,
        num_classes: int | None = None,
        *,
        average: str | None = "auto",
        labels: Sequence[int] | None = None,
        zero_division: Any = "warn",
        pos_label: int = 1,
    ) -> None:
        super().__init__(num_classes)
        self.average = _check_average(average)
        self.labels = labels
        self.zero_division = zero_division
        self.pos_label = pos_label

    def _labels(self) -> list[int] | None:
        if self.average == "none":
            return _per_class_labels(self.num_classes, self.labels)
        return None if self.labels is None else [int(v) for v in self.labels]

    def compute(self) -> dict[str, Any]:
        labels = self._labels()
        value = _prf_compute(
            self.confmat, self.which, self.average, labels, self.zero_division, self.pos_label
        )
        out: dict[str, Any] = {self.name: value}
        if self.average == "none":
            out["labels"] = _present_labels(self.confmat, labels)
        return out


class Precision(_PRF):
    """tp / (tp + fp), averaged as ``average`` says (``precision_score``).

    Example:
        >>> m = Precision(average="micro"); m.update([0, 1, 1], [0, 1, 0]); m.compute()
        {'precision': 0.6666666666666666}
    """

    name = "precision"
    which = "precision"


class Recall(_PRF):
    """tp / (tp + fn), averaged as ``average`` says (``recall_score``)."""

    name = "recall"
    which = "recall"


class F1Score(_PRF):
    """Harmonic mean of precision and recall (``f1_score``); ``beta`` gives F-beta."""

    name = "f1"
    which = "f1"

    def __init__(self, num_classes: int | None = None, *, beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.beta = float(beta)

    def compute(self) -> dict[str, Any]:
        labels = self._labels()
        value = _prf_compute(
            self.confmat,
            "f1",
            self.average,
            labels,
            self.zero_division,
            self.pos_label,
            beta=self.beta,
        )
        out: dict[str, Any] = {self.name: value}
        if self.average == "none":
            out["labels"] = _present_labels(self.confmat, labels)
        return out


class ConfusionMatrix(_ConfusionBased):
    """The (C, C) confusion matrix, rows true and columns predicted (``confusion_matrix``).

    Args:
        num_classes: Matrix size; inferred from the labels and score widths seen when None.
        normalize: ``None``, ``"true"`` (rows sum to 1), ``"pred"`` or ``"all"``, as sklearn.
    """

    name = "confusion_matrix"

    def __init__(self, num_classes: int | None = None, *, normalize: str | None = None) -> None:
        super().__init__(num_classes)
        if normalize not in (None, "true", "pred", "all"):
            raise MetricError(
                f"Expected normalize in (None, 'true', 'pred', 'all'). Received: {normalize!r}"
            )
        self.normalize = normalize

    def compute(self) -> dict[str, Any]:
        from sklearn.metrics import confusion_matrix as sk_confusion_matrix

        size = self.confmat.shape[0]
        t, p, w = _cells(self.confmat)
        if self.normalize is None or w.size == 0:
            return {"confusion_matrix": self.confmat.tolist()}
        cm = sk_confusion_matrix(
            t, p, labels=list(range(size)), sample_weight=w, normalize=self.normalize
        )
        return {"confusion_matrix": cm.tolist()}


# --------------------------------------------------------------------------- functional twins


def _one_shot(metric: Metric, y_true: Any, y_pred: Any) -> dict[str, Any]:
    metric.update(y_true, y_pred)
    return metric.compute()


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Functional :class:`Accuracy`. ``y_pred``: labels (N,) or scores (N, C)."""
    return _one_shot(Accuracy(), y_true, y_pred)["accuracy"]


def precision(y_true: Any, y_pred: Any, *, num_classes: int | None = None, **kwargs: Any) -> Any:
    """Functional :class:`Precision` (``average``, ``labels``, ``zero_division``, ``pos_label``)."""
    return _one_shot(Precision(num_classes, **kwargs), y_true, y_pred)["precision"]


def recall(y_true: Any, y_pred: Any, *, num_classes: int | None = None, **kwargs: Any) -> Any:
    """Functional :class:`Recall`."""
    return _one_shot(Recall(num_classes, **kwargs), y_true, y_pred)["recall"]


def f1(y_true: Any, y_pred: Any, *, num_classes: int | None = None, **kwargs: Any) -> Any:
    """Functional :class:`F1Score` (also ``beta`` for F-beta)."""
    return _one_shot(F1Score(num_classes, **kwargs), y_true, y_pred)["f1"]


def confusion_matrix(
    y_true: Any, y_pred: Any, *, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """Functional :class:`ConfusionMatrix`, as an array."""
    out = _one_shot(ConfusionMatrix(num_classes, normalize=normalize), y_true, y_pred)
    return np.asarray(out["confusion_matrix"])


def top_k_accuracy(y_true: Any, y_score: Any, k: int = 5) -> float:
    """Functional :class:`TopKAccuracy`."""
    return _one_shot(TopKAccuracy(k), y_true, y_score)[f"top_{k}_accuracy"]


def roc_auc(
    y_true: Any,
    y_score: Any,
    *,
    average: str = "macro",
    from_logits: bool | None = None,
    num_classes: int | None = None,
) -> Any:
    """Functional :class:`RocAuc`. ``y_score``: (N,) positive-class scores or (N, C)."""
    metric = RocAuc(num_classes, average=average, from_logits=from_logits)
    return _one_shot(metric, y_true, y_score)["roc_auc"]


def log_loss(
    y_true: Any, y_score: Any, *, from_logits: bool | None = None, num_classes: int | None = None
) -> float:
    """Functional :class:`LogLoss`. ``y_score``: (N, C) probabilities or logits, or (N,)
    positive-class scores."""
    return _one_shot(LogLoss(num_classes, from_logits=from_logits), y_true, y_score)["log_loss"]


# --------------------------------------------------------------------------- reports


def classification_report(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int | None = None,
    labels: Sequence[int] | None = None,
    target_names: Sequence[str] | None = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support (``classification_report(output_dict=True)``).

    Example:
        >>> r = classification_report([0, 1, 1], [0, 1, 0])
        >>> r["1"]["recall"], r["accuracy"]
        (0.5, 0.6666666666666666)
    """
    from sklearn.metrics import classification_report as sk_report

    matrix = _confusion_update(y_true, y_pred, _check_num_classes(num_classes))
    t, p, w = _cells(matrix)
    report = sk_report(
        t,
        p,
        labels=_sk_labels(labels),
        target_names=None if target_names is None else list(target_names),
        sample_weight=w,
        output_dict=True,
        zero_division=zero_division,
    )
    # Supports come back as weights (floats); they are counts.
    for value in report.values():
        if isinstance(value, dict) and "support" in value:
            value["support"] = int(round(value["support"]))
    return report


def classification_report_from_scores(
    y_true: Any, scores: Any, num_classes: int | None = None, *, top_k: int = 5
) -> dict[str, Any]:
    """The standard summary the benchmark runner records for a classifier.

    Args:
        y_true: (N,) true labels.
        scores: (N, C) logits or probabilities (or (N,) predicted labels: no top-k then).
        num_classes: C; inferred from ``scores`` when None.
        top_k: k of the top-k accuracy, reported when C > k.

    Returns:
        ``{"num_samples", "accuracy", "top_5_accuracy" (when C > 5), "precision_macro",
        "recall_macro", "f1_macro", "confusion_matrix"}`` (macro averages over all C classes,
        zero_division=0).

    Example:
        >>> import numpy as np
        >>> r = classification_report_from_scores([0, 1], np.eye(2))
        >>> r["accuracy"], r["f1_macro"]
        (1.0, 1.0)
    """
    scores = np.asarray(scores)
    num_classes = _check_num_classes(num_classes)
    matrix = _confusion_update(y_true, scores, num_classes)
    c = matrix.shape[0]
    labels = list(range(c))
    out: dict[str, Any] = {
        "num_samples": int(matrix.sum()),
        "accuracy": float(np.trace(matrix) / matrix.sum()) if matrix.sum() else float("nan"),
    }
    if scores.ndim == 2 and scores.shape[1] > top_k:
        t = as_labels(y_true)
        out[f"top_{top_k}_accuracy"] = _top_k_hits(t, as_scores(scores, "scores"), top_k) / max(
            t.size, 1
        )
    for which in ("precision", "recall", "f1"):
        out[f"{which}_macro"] = _prf_compute(matrix, which, "macro", labels, 0, 1)
    out["confusion_matrix"] = matrix.tolist()
    return out
