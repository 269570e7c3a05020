"""Public import path of the model zoo: ``dlbench.zoo.get`` (it lives in :mod:`dlbench.model.zoo`)."""

from dlbench.model.zoo import BUILTIN, describe, get, names  # noqa: F401

__all__ = ["names", "get", "describe", "BUILTIN"]
