"""The Metric interface: small state machines with NumPy state (after torchmetrics).

Subclasses declare their state with :meth:`Metric.add_state` in ``__init__`` and implement
:meth:`update` and :meth:`compute`; the base class owns ``reset()`` and the guards.

Example:
    >>> import numpy as np
    >>> class Count(Metric):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.add_state("n", np.zeros((), np.int64))
    ...     def update(self, y_true, y_pred):
    ...         self.n += len(y_true)
    ...     def compute(self):
    ...         return {"n": int(self.n)}
    >>> m = Count(); m.update([1, 2], [1, 2]); m.compute()
    {'n': 2}
"""

from __future__ import annotations

import copy
import functools
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from dlbench.errors import MetricError

REDUCTIONS = ("sum", "cat", "max", "min")


class Metric(ABC):
    """A streaming metric: ``update(...)`` per batch, ``compute() -> dict``, ``reset()``."""

    name: str = ""

    def __init__(self) -> None:
        self._defaults: dict[str, Any] = {}
        self._reductions: dict[str, str] = {}
        self._update_count = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "update" in cls.__dict__:
            cls.update = _counted(cls.__dict__["update"])  # type: ignore[method-assign]
        if "compute" in cls.__dict__:
            cls.compute = _guarded(cls.__dict__["compute"])  # type: ignore[method-assign]

    def add_state(self, name: str, default: np.ndarray | list, reduce: str = "sum") -> None:
        """Declare a piece of state: an array (reduced by sum/max/min) or a list (``cat``)."""
        if reduce not in REDUCTIONS:
            raise MetricError(f"Expected reduce in {REDUCTIONS}. Received: reduce={reduce!r}")
        if isinstance(default, list) and default:
            raise MetricError(f"A list state must start empty. Received: {name}={default!r}")
        self._defaults[name] = copy.deepcopy(default)
        self._reductions[name] = reduce
        setattr(self, name, copy.deepcopy(default))

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate one batch."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """The metric value(s) over everything accumulated since the last reset."""

    def reset(self) -> None:
        """Return every state to its default."""
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))
        self._update_count = 0

    def merge(self, other: Metric) -> None:
        """Fold the state of ``other`` (same class, e.g. from another worker) into this one."""
        if type(other) is not type(self):
            raise MetricError(
                f"Expected a {type(self).__name__} to merge. Received: {type(other).__name__}"
            )
        for name, how in self._reductions.items():
            a, b = getattr(self, name), getattr(other, name)
            if how == "cat":
                setattr(self, name, a + b)
            elif how == "sum":
                setattr(self, name, a + b)
            elif how == "max":
                setattr(self, name, np.maximum(a, b))
            else:
                setattr(self, name, np.minimum(a, b))
        self._update_count += other._update_count

    @property
    def update_count(self) -> int:
        return self._update_count


def _counted(fn: Any) -> Any:
    @functools.wraps(fn)
    def update(self: Metric, *args: Any, **kwargs: Any) -> None:
        fn(self, *args, **kwargs)
        self._update_count += 1

    return update


def _guarded(fn: Any) -> Any:
    @functools.wraps(fn)
    def compute(self: Metric) -> dict[str, Any]:
        if self._update_count == 0:
            warnings.warn(
                f"{type(self).__name__}.compute() was called before any update(); "
                "the result describes no data.",
                UserWarning,
                stacklevel=2,
            )
        return fn(self)

    return compute
