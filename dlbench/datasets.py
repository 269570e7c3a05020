"""Public import path of dataset loading: ``dlbench.datasets.load`` (it lives in :mod:`dlbench.data`)."""

from dlbench.data import Batch, Dataset, DatasetInfo, load, names, register  # noqa: F401

__all__ = ["load", "names", "register", "Dataset", "DatasetInfo", "Batch"]
