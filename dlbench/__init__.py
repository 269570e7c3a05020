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

#: public module names -> where they live (layout v2; see the README's "Where things live")
_LAZY_MODULES = {
    "datasets": "dlbench.datasets",
    "zoo": "dlbench.zoo",
    "metrics": "dlbench.metrics",
    "measure": "dlbench.measure",
    "export": "dlbench.export",
    "testing": "dlbench.testing",
    "parity": "dlbench.analysis.parity",
    "train": "dlbench.train",
    "compare": "dlbench.analysis.compare",
    "report": "dlbench.report",
}
_LAZY_ATTRS = {
    "get_backend": "dlbench.model.backend:get_backend",
    "available_backends": "dlbench.model.backend:available_backends",
    "run": "dlbench.execution.runner:run",
    "BenchmarkConfig": "dlbench.execution.config:BenchmarkConfig",
    "ModelSpec": "dlbench.model.spec:ModelSpec",
}

if TYPE_CHECKING:  # pragma: no cover
    from dlbench import datasets, measure, metrics, zoo  # noqa: F401
    from dlbench.execution.config import BenchmarkConfig  # noqa: F401
    from dlbench.execution.runner import run  # noqa: F401
    from dlbench.model.backend import available_backends, get_backend  # noqa: F401
    from dlbench.model.spec import ModelSpec  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY_ATTRS:
        module, _, attr = _LAZY_ATTRS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dlbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_ATTRS))
