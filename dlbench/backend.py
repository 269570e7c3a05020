"""Public import path of the Backend and Model interfaces (they live in :mod:`dlbench.model.backend`)."""

from dlbench.model.backend import (  # noqa: F401
    DEVICES,
    Backend,
    Model,
    available_backends,
    get_backend,
    parse_device,
)

__all__ = ["Backend", "Model", "get_backend", "available_backends", "parse_device", "DEVICES"]
