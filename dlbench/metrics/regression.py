"""Regression metrics: mean squared error, mean absolute error, R² (scikit-learn's numbers).

MSE and MAE stream as running sums; R² keeps the targets and predictions and hands them to
``sklearn.metrics.r2_score`` so that constant targets and multi-output averaging behave
exactly as there.

Example:
    >>> m = MeanSquaredError(); m.update([1.0, 2.0], [1.0, 4.0]); m.compute()
    {'mse': 2.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.errors import MetricError
from dlbench.metrics.base import Metric


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.ndim == 2 and t.shape[1] == 1 and p.ndim == 1:
        t = t[:, 0]
    if p.ndim == 2 and p.shape[1] == 1 and t.ndim == 1:
        p = p[:, 0]
    if t.shape != p.shape or t.ndim not in (1, 2):
        raise MetricError(
            f"Expected y_true and y_pred of the same shape, (N,) or (N, outputs). "
            f"Received {t.shape} and {p.shape}"
        )
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise MetricError("Expected finite y_true and y_pred. Received NaN or inf")
    return t, p


class _ErrorSum(Metric):
    key = ""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("error_sum", np.zeros((), np.float64), "sum")
        self.add_state("count", np.zeros((), np.int64), "sum")

    def _error(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def update(self, y_true: Any, y_pred: Any) -> None:
        t, p = _pair(y_true, y_pred)
        err = self._error(t, p)
        self.error_sum = self.error_sum + err.sum(axis=0)
        self.count = self.count + t.shape[0]

    def compute(self) -> dict[str, Any]:
        if not self.count:
            return {self.key: float("nan")}
        value = self.error_sum / self.count
        return {self.key: float(np.mean(value))}  # multi-output: uniform average, as sklearn


class MeanSquaredError(_ErrorSum):
    """Mean of (y_true - y_pred)² (``mean_squared_error``)."""

    name = key = "mse"

    def _error(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return (t - p) ** 2


class MeanAbsoluteError(_ErrorSum):
    """Mean of |y_true - y_pred| (``mean_absolute_error``)."""

    name = key = "mae"

    def _error(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.abs(t - p)


class R2Score(Metric):
    """Coefficient of determination (``r2_score``; ``multioutput`` as there).

    Example:
        >>> m = R2Score(); m.update([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]); m.compute()
        {'r2': 1.0}
    """

    name = "r2"

    def __init__(self, *, multioutput: str = "uniform_average") -> None:
        super().__init__()
        self.multioutput = multioutput
        self.add_state("targets", [], "cat")
        self.add_state("preds", [], "cat")

    def update(self, y_true: Any, y_pred: Any) -> None:
        t, p = _pair(y_true, y_pred)
        self.targets.append(t)
        self.preds.append(p)

    def compute(self) -> dict[str, Any]:
        from sklearn.metrics import r2_score

        if not self.targets:
            return {"r2": float("nan")}
        t, p = np.concatenate(self.targets), np.concatenate(self.preds)
        if t.shape[0] < 2:
            return {"r2": float("nan")}
        value = r2_score(t, p, multioutput=self.multioutput)
        return {"r2": np.asarray(value).tolist() if np.ndim(value) else float(value)}


def mse(y_true: Any, y_pred: Any) -> float:
    """Functional :class:`MeanSquaredError`."""
    m = MeanSquaredError()
    m.update(y_true, y_pred)
    return m.compute()["mse"]


def mae(y_true: Any, y_pred: Any) -> float:
    """Functional :class:`MeanAbsoluteError`."""
    m = MeanAbsoluteError()
    m.update(y_true, y_pred)
    return m.compute()["mae"]


def r2(y_true: Any, y_pred: Any, *, multioutput: str = "uniform_average") -> Any:
    """Functional :class:`R2Score`."""
    m = R2Score(multioutput=multioutput)
    m.update(y_true, y_pred)
    return m.compute()["r2"]
