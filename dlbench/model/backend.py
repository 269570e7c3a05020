"""The Backend and Model interfaces.

A :class:`Backend` turns a framework-neutral :class:`~dlbench.model.spec.ModelSpec` into a native
executable for one device (:meth:`Backend.build`), or wraps a user's own native model
(:meth:`Backend.wrap`). The result is a :class:`Model`, whose work is split so that timing can be
exact::

    x = model.to_device(batch)   # host NumPy -> native input (layout, dtype, device)
    y = model.forward(x)         # the computation (may return before it is finished)
    model.sync(y)                # wait until the computation has really finished
    out = model.to_numpy(y)      # native output -> host NumPy

Example:
    >>> import numpy as np, dlbench
    >>> spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    >>> model = dlbench.get_backend("numpy").build(spec)
    >>> model.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dlbench.errors import BackendError, ConfigError
from dlbench.registry import backends as _registry

if TYPE_CHECKING:  # pragma: no cover
    from dlbench.model.spec import ModelSpec

DEVICES = ("cpu", "cuda")


def parse_device(device: str) -> tuple[str, int]:
    """Split ``"cuda:1"`` into ``("cuda", 1)``; ``"cpu"`` into ``("cpu", 0)``."""
    if not isinstance(device, str):
        raise ConfigError(
            f"Expected device to be a string like 'cpu' or 'cuda:0'. Received: {device!r}"
        )
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()):
        raise ConfigError(
            f"Expected device to be one of 'cpu', 'cuda' or 'cuda:N'. Received: device={device!r}"
        )
    return kind, int(index or 0)


class Model(ABC):
    """An executable bound to one backend and one device."""

    def __init__(self, backend: Backend, device: str, name: str = "model") -> None:
        self.backend = backend
        self.device = device
        self.name = name

    @abstractmethod
    def to_device(self, batch: np.ndarray) -> Any:
        """Convert a host float32 NCHW array into this model's native input on its device."""

    @abstractmethod
    def forward(self, x: Any) -> Any:
        """Run the model on a native input; may return before the work is finished."""

    @abstractmethod
    def sync(self, y: Any) -> None:
        """Block until ``y`` (the result of :meth:`forward`) is really computed."""

    @abstractmethod
    def to_numpy(self, y: Any) -> np.ndarray:
        """Copy a native output to a host NumPy array."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Host NumPy in, host NumPy out: ``to_numpy(forward(to_device(batch)))``."""
        batch = np.asarray(batch)
        y = self.forward(self.to_device(batch))
        self.sync(y)
        return self.to_numpy(y)

    def settings(self) -> dict[str, Any]:
        """Everything that changes what or how this model computes (mode, threads, precision)."""
        return {"backend": self.backend.name, "device": self.device, **self.backend.settings()}

    def weight_bytes(self) -> int | None:
        """Bytes held by the model's parameters, when known."""
        return None

    def memory_stats(self) -> dict[str, Any]:
        """GPU allocator statistics of this model's device, ``{reader: {...}}``; ``{}`` on a
        CPU. Delegates to :meth:`Backend.memory_stats`."""
        kind, index = parse_device(self.device)
        return self.backend.memory_stats(index) if kind == "cuda" else {}

    def reset_peaks(self) -> None:
        """Reset the allocator peaks of this model's device (before a cell)."""
        kind, index = parse_device(self.device)
        if kind == "cuda":
            self.backend.reset_peaks(index)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.backend.name}:{self.device}>"


class Backend(ABC):
    """One framework (or runtime) able to run ModelSpecs.

    Args:
        **options: Backend-specific options (mode, threads, precision...), validated by the
            subclass; unknown options are an error.
    """

    name: ClassVar[str] = ""
    #: Python modules the backend needs; checked without importing them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Option names and defaults this backend accepts.
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {unknown} for backend {self.name!r}. "
                f"Expected some of: {sorted(self.default_options)}"
            )
        self.options: dict[str, Any] = {**self.default_options, **options}

    @abstractmethod
    def build(self, spec: ModelSpec, device: str = "cpu") -> Model:
        """Turn ``spec`` into a native model on ``device`` (weights copied once, here)."""

    def wrap(self, native: Any, **kwargs: Any) -> Model:
        """Wrap a user's native model. Backends that support it override this."""
        raise BackendError(f"Backend {self.name!r} cannot wrap native models yet.")

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework and of the libraries that matter for speed."""

    def devices(self) -> list[str]:
        """Devices this backend can run on here."""
        return ["cpu"]

    def settings(self) -> dict[str, Any]:
        """The options in force, for the result file and the fairness checks."""
        return dict(self.options)

    # -- hooks the core calls instead of naming a framework -----------------------------------
    @property
    def manifest(self) -> Any:
        """This backend's :class:`~dlbench.model.manifest.BackendManifest` (from the registry)."""
        own = self.__dict__.get("_manifest")
        if own is None:
            own = _registry.manifest(self.name)
            self.__dict__["_manifest"] = own
        return own

    def memory_stats(self, index: int) -> dict[str, Any]:
        """GPU allocator statistics on CUDA device ``index``, as ``{reader: {...}}`` (e.g.
        ``{"torch": {"max_allocated_bytes": ...}}``); ``{}`` when the backend has none."""
        return {}

    def reset_peaks(self, index: int) -> None:
        """Reset the allocator's peak statistics on CUDA device ``index`` (if it can)."""
        return None

    def release_memory(self) -> None:
        """Give cached device memory back (after an out-of-memory error)."""
        return None

    def is_oom(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "out of memory" here (the manifest's markers, and the generic
        ones), judged without importing anything."""
        from dlbench.model.manifest import is_oom

        try:
            manifest = self.manifest
        except Exception:  # a backend built outside the registry
            return is_oom(exc)
        return manifest.is_oom(exc)

    def trainer(self, spec: ModelSpec, config: Any, device: str = "cpu") -> Any:
        """A trainer for ``spec`` (the manifest's ``train`` capability,
        ``make_trainer(spec, config, device)``).

        Raises:
            RegistryError: the backend cannot train.
        """
        return self.manifest.load("train")(spec, config, device)

    def export_onnx(self, model: Model, request: Any) -> tuple[Any, dict[str, Any]]:
        """Export ``model`` to an ONNX ``ModelProto`` (the manifest's ``export`` capability)
        as asked by ``request`` (a :class:`dlbench.export.request.ExportRequest`): returns
        ``(proto, info)``. Use :func:`dlbench.export.to_onnx` for the checked export.

        Raises:
            RegistryError: the backend cannot export.
        """
        return self.manifest.load("export")(model, request)

    def check_device(self, device: str) -> str:
        kind, _ = parse_device(device)
        available = self.devices()
        if kind not in {parse_device(d)[0] for d in available}:
            raise BackendError(
                f"Backend {self.name!r} cannot run on {device!r} here. Available: {available}"
            )
        return device

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options}>"


def get_backend(name: str, **options: Any) -> Backend:
    """The backend registered as ``name``, constructed with ``options``.

    Raises:
        RegistryError: ``name`` is unknown.
        MissingFrameworkError: its framework is not installed (the message names the extra).

    Example:
        >>> get_backend("numpy").name
        'numpy'
    """
    cls = _registry.get(name)
    backend = cls(**options)
    if backend.name != name:  # a class registered under another name (a plugin reusing one)
        backend.name = name
    return backend


def available_backends() -> list[str]:
    """Names of the backends whose frameworks are installed (nothing is imported to find out)."""
    return _registry.available()
