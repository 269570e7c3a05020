"""dlbench: one benchmark, many frameworks.

Runs the same model, with the same weights, on the same data, under the same settings in
PyTorch, TensorFlow/Keras, JAX and ONNX Runtime, and reports speed, memory and quality side by
side, with proof that the comparison was fair.

``import dlbench`` imports no deep learning framework; each backend imports its own framework
when it is first used.

Example:
    >>> import dlbench
    >>> spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    >>> model = dlbench.get_backend("numpy").build(spec)
    >>> model.predict(np.zeros((2, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (2, 10)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "available_backends",
    "get_backend",
    "run",
    "BenchmarkConfig",
    "ModelSpec",
    "datasets",
    "zoo",
    "metrics",
    "measure",
]

_LAZY_MODULES = {
    "datasets",
    "zoo",
    "metrics",
    "measure",
    "export",
    "testing",
    "parity",
    "train",
    "compare",
    "report",
}
_LAZY_ATTRS = {
    "get_backend": "dlbench.backend:get_backend",
    "available_backends": "dlbench.backend:available_backends",
    "run": "dlbench.runner:run",
    "BenchmarkConfig": "dlbench.config:BenchmarkConfig",
    "ModelSpec": "dlbench.spec:ModelSpec",
}

if TYPE_CHECKING:  # pragma: no cover
    from dlbench import datasets, measure, metrics, zoo  # noqa: F401
    from dlbench.backend import available_backends, get_backend  # noqa: F401
    from dlbench.config import BenchmarkConfig  # noqa: F401
    from dlbench.runner import run  # noqa: F401
    from dlbench.spec import ModelSpec  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"dlbench.{name}")
    if name in _LAZY_ATTRS:
        module, _, attr = _LAZY_ATTRS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dlbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_MODULES | set(_LAZY_ATTRS))
