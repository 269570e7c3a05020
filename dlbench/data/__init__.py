"""Loading datasets by name: ``dlbench.data.load("digits", split="test")``.

Built-ins live in ``dlbench.adapters.datasets``; third-party datasets join through the
``dlbench.datasets`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from dlbench.data.dataset import Batch, DataNotFoundError, Dataset, DatasetInfo
from dlbench.registry import datasets as _registry

__all__ = [
    "load",
    "names",
    "register",
    "Dataset",
    "DatasetInfo",
    "Batch",
    "DataNotFoundError",
]


def load(name: str, root: str | None = None, split: str = "test", **kwargs: Any) -> Dataset:
    """Load the dataset registered as ``name``.

    Args:
        name: Registry name (see :func:`names`), e.g. ``"digits"``, ``"cifar10"``.
        root: Where the files are (or go, with ``download=True``); each dataset has a default.
        split: Which split, e.g. ``"train"`` or ``"test"``.
        **kwargs: Dataset-specific options.

    Example:
        >>> ds = load("digits", split="test")
        >>> ds.info.input_shape
        (1, 8, 8)
    """
    factory = _registry.get(name)
    return factory(root=root, split=split, **kwargs)


def names() -> list[str]:
    """Names of all registered datasets."""
    return _registry.names()


def register(name: str, target: Any, **kwargs: Any) -> None:
    """Register a dataset class (or ``"module:Class"`` string) under ``name``."""
    _registry.register(name, target, **kwargs)
