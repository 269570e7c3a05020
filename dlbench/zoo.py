"""Public import path of the model zoo: ``dlbench.zoo.get`` and ``dlbench.zoo.load`` (a model
from an ``.onnx`` or saved-spec file); it lives in :mod:`dlbench.model.zoo`."""

from dlbench.model.zoo import BUILTIN, describe, get, load, names  # noqa: F401

__all__ = ["names", "get", "load", "describe", "BUILTIN"]
