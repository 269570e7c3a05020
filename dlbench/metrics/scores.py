"""Classification metrics computed from scores (logits or probabilities): top-k accuracy, ROC AUC
and log loss, with the one probabilities-or-logits decision they share."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics._inputs import (
    _check_num_classes,
    as_labels,
    as_scores,
    check_from_logits,
    check_same_length,
    looks_like_logits,
    probability_atol,
    to_probabilities,
)
from dlbench.metrics.base import Metric

AVERAGES = ("micro", "macro", "weighted", "none", "binary", "auto")


class TopKAccuracy(Metric):
    """Share of samples whose true class is among the ``k`` highest scores.

    Ties follow ``sklearn.metrics.top_k_accuracy_score``: among equal scores the higher class
    index ranks first. ``y_pred`` must be (N, C) scores (logits or probabilities: the ranking
    is the same).
    """

    name = "top_k_accuracy"

    def __init__(self, k: int = 5, num_classes: int | None = None) -> None:
        super().__init__()
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise MetricError(f"Expected k to be a positive int. Received: k={k!r}")
        self.k = int(k)
        self.num_classes = _check_num_classes(num_classes)
        self.add_state("hits", np.zeros((), np.int64), "sum")
        self.add_state("total", np.zeros((), np.int64), "sum")

    def update(self, y_true: Any, y_pred: Any) -> None:
        t = as_labels(y_true)
        s = as_scores(y_pred, "y_pred")
        check_same_length(t, s)
        if self.num_classes is not None and s.shape[1] != self.num_classes:
            raise MetricError(
                f"Expected y_pred with num_classes={self.num_classes} columns. Received {s.shape}"
            )
        if t.size and t.max() >= s.shape[1]:
            raise MetricError(
                f"Expected labels in [0, {s.shape[1]}) for {s.shape[1]} score columns. "
                f"Received label {int(t.max())}"
            )
        self.hits = self.hits + _top_k_hits(t, s, self.k)
        self.total = self.total + t.size

    def compute(self) -> dict[str, Any]:
        value = float(self.hits / self.total) if self.total else float("nan")
        return {f"top_{self.k}_accuracy": value}


def _top_k_hits(t: np.ndarray, s: np.ndarray, k: int) -> int:
    true_score = s[np.arange(t.size), t][:, None]
    cols = np.arange(s.shape[1])[None, :]
    ahead = (s > true_score) | ((s == true_score) & (cols > t[:, None]))
    return int((ahead.sum(axis=1) < k).sum())


class _ScoreBased(Metric):
    """Shared state: every label and score row seen (reduce: concatenate)."""

    def __init__(self, num_classes: int | None = None, from_logits: bool | None = None) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.from_logits = check_from_logits(from_logits)
        self.add_state("targets", [], "cat")
        self.add_state("scores", [], "cat")
        # the probability tolerance of the least precise dtype seen (see probability_atol)
        self.add_state("prob_atol", np.asarray(1e-5), "max")

    def update(self, y_true: Any, y_pred: Any) -> None:
        t = as_labels(y_true)
        raw = np.asarray(y_pred)
        self.prob_atol = np.maximum(self.prob_atol, probability_atol(raw.dtype))
        s = np.asarray(raw, np.float64)
        if s.ndim == 1:  # binary: the positive class's score, kept as one column
            s = s[:, None]
        s = as_scores(s, "y_pred")
        check_same_length(t, s)
        width = 2 if s.shape[1] == 1 else s.shape[1]
        if self.num_classes is not None and width != self.num_classes:
            raise MetricError(
                f"Expected y_pred with num_classes={self.num_classes} columns. Received {s.shape}"
            )
        if self.scores and self.scores[0].shape[1] != s.shape[1]:
            raise MetricError(
                f"Expected {self.scores[0].shape[1]} score columns as in earlier batches. "
                f"Received {s.shape[1]}"
            )
        self.targets.append(t)
        self.scores.append(s)

    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.scores:
            return np.zeros(0, np.int64), np.zeros((0, self.num_classes or 2))
        return np.concatenate(self.targets), np.concatenate(self.scores)

    def _atol(self) -> float:
        return float(self.prob_atol)


def _binary_column_logits(s: np.ndarray, from_logits: bool | None) -> bool:
    """Whether a (N, 1) column of positive-class scores holds logits (auto: a value outside
    [0, 1])."""
    if from_logits is None:
        return bool(s.size) and bool((s < 0).any() or (s > 1).any())
    return bool(from_logits)


def _probabilities(s: np.ndarray, from_logits: bool | None, atol: float) -> np.ndarray:
    """(N, C) probabilities from stored scores; a (N, 1) positive-class column becomes
    ``[1 - p, p]`` with ``p = sigmoid(z)`` for logits."""
    if s.shape[1] == 1:
        col = s[:, 0]
        if _binary_column_logits(s, from_logits):
            col = 1.0 / (1.0 + np.exp(-col))
        return np.stack([1.0 - col, col], axis=1)
    return to_probabilities(s, from_logits, atol)


def _positive_ranking(s: np.ndarray, from_logits: bool | None, atol: float) -> np.ndarray:
    """Binary ROC AUC's ranking: the positive class's probability, or for logits its margin
    (``z1 - z0``: the same order as the softmax probability, without saturating to ties)."""
    if s.shape[1] == 1:
        return s[:, 0]  # a logit and its sigmoid rank alike
    logits = looks_like_logits(s, atol) if from_logits is None else from_logits
    return s[:, 1] - s[:, 0] if logits else s[:, 1]


class RocAuc(_ScoreBased):
    """Area under the ROC curve (``roc_auc_score``): binary, or one-vs-rest for multiclass.

    Args:
        num_classes: Score columns; inferred from ``y_pred`` when None.
        average: ``"macro"`` or ``"weighted"`` (multiclass one-vs-rest), ``"none"`` per class.
        from_logits: ``None`` (auto): logits when a value lies outside [0, 1] or a row sums far
            from 1, probabilities when rows sum to 1 within the dtype's tolerance, an error in
            between; ``True``: always logits; ``False``: never (multiclass then needs rows that
            sum to 1, as scikit-learn requires). Binary (N, 2) logits are ranked by the positive
            class's probability (its margin ``z1 - z0``), probabilities by column 1; (N,) scores
            rank as they are.

    Raises (at compute):
        MetricError: a class has no positive sample (ROC AUC is undefined for it).
    """

    name = "roc_auc"

    def __init__(
        self,
        num_classes: int | None = None,
        *,
        average: str = "macro",
        from_logits: bool | None = None,
    ) -> None:
        super().__init__(num_classes, from_logits)
        if average not in ("macro", "weighted", "none"):
            raise MetricError(
                f"Expected average in ('macro', 'weighted', 'none'). Received: {average!r}"
            )
        self.average = average

    def compute(self) -> dict[str, Any]:
        t, s = self._data()
        return {"roc_auc": _roc_auc_compute(t, s, self.average, self.from_logits, self._atol())}


def _roc_auc_compute(
    t: np.ndarray, s: np.ndarray, average: str, from_logits: bool | None, atol: float = 1e-5
) -> Any:
    from sklearn.metrics import roc_auc_score

    c = max(2, s.shape[1])
    if t.size and t.max() >= c:
        raise MetricError(f"Expected labels in [0, {c}). Received label {int(t.max())}")
    present = np.bincount(t, minlength=c)
    if t.size == 0 or (present == 0).any() or (present == t.size).any():
        missing = np.flatnonzero(present == 0).tolist()
        raise MetricError(
            f"Expected every class among the {c} columns to have positive and negative samples "
            f"for ROC AUC. Received y_true without class(es) {missing}"
            if missing
            else "Expected samples of at least two classes for ROC AUC. Received one class only"
        )
    if c == 2:
        value = roc_auc_score(t, _positive_ranking(s, from_logits, atol))
        return [float(value)] * 2 if average == "none" else float(value)
    p = to_probabilities(s, from_logits, atol)
    if average == "none":
        return [float(roc_auc_score(t == k, p[:, k])) for k in range(c)]
    return float(roc_auc_score(t, p, multi_class="ovr", average=average, labels=list(range(c))))


class LogLoss(_ScoreBased):
    """Cross-entropy of the true class (``log_loss``), mean over samples.

    ``from_logits``: ``None`` (auto) applies softmax when the scores are logits (see
    :func:`~dlbench.metrics._inputs.looks_like_logits`: by the dtype's tolerance, refusing
    ambiguous rows), ``True`` always, ``False`` never. (N,) scores are the positive class's
    probability, or its logit (sigmoid) when ``from_logits`` is true or a value is outside [0, 1].
    """

    name = "log_loss"

    def compute(self) -> dict[str, Any]:
        t, s = self._data()
        return {"log_loss": _log_loss_compute(t, s, self.from_logits, self._atol())}


def _log_loss_compute(
    t: np.ndarray, s: np.ndarray, from_logits: bool | None, atol: float = 1e-5
) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    if t.size == 0:
        return float("nan")
    c = max(2, s.shape[1])
    if t.max() >= c:
        raise MetricError(f"Expected labels in [0, {c}). Received label {int(t.max())}")
    p = _probabilities(s, from_logits, atol)
    return float(sk_log_loss(t, p, labels=list(range(c))))
