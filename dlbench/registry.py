"""A lazy plugin registry, in the manner of fsspec's ``known_implementations``.

Built-ins are registered as ``"module:attr"`` strings and imported on first use; third-party
packages join through entry-point groups (``dlbench.backends``, ``dlbench.datasets``,
``dlbench.models``, ``dlbench.metrics``) and are treated exactly like built-ins.

Example:
    >>> from dlbench.registry import backends
    >>> "numpy" in backends.names()
    True
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from dlbench.errors import MissingFrameworkError, RegistryError


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Entry:
    """One registered implementation."""

    name: str
    target: Any  # "module:attr" string or the object itself
    requires: tuple[str, ...] = ()
    extra: str | None = None
    origin: str = "builtin"
    _loaded: Any = field(default=None, repr=False)

    def missing(self) -> list[str]:
        return [m for m in self.requires if not is_installed(m)]

    def missing_message(self) -> str | None:
        """A one-line explanation naming the extra to install, or None when nothing is missing."""
        missing = self.missing()
        if not missing:
            return None
        hint = f" Install it with: pip install 'dlbench[{self.extra}]'" if self.extra else ""
        return f"{self.name!r} needs {', '.join(missing)}, which is not installed.{hint}"

    def load(self) -> Any:
        if self._loaded is not None:
            return self._loaded
        if not isinstance(self.target, str):
            self._loaded = self.target
            return self._loaded
        message = self.missing_message()
        if message:
            raise MissingFrameworkError(message)
        module_name, _, attr = self.target.partition(":")
        module = importlib.import_module(module_name)
        obj = module
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        self._loaded = obj
        return obj


class Registry:
    """Maps names to lazily imported implementations of one kind.

    Args:
        kind: What is registered, for messages ("backend", "dataset", ...).
        group: The entry-point group third-party packages use.
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry] = {}
        self._entry_points_loaded = False

    def register(
        self,
        name: str,
        target: Any,
        *,
        requires: Iterable[str] = (),
        extra: str | None = None,
        overwrite: bool = False,
        origin: str = "builtin",
    ) -> None:
        """Register ``target`` (a ``"module:attr"`` string or an object) under ``name``.

        Raises:
            RegistryError: ``name`` is taken and ``overwrite`` is false.
        """
        if not isinstance(name, str) or not name:
            raise RegistryError(f"Expected a non-empty string {self.kind} name. Received: {name!r}")
        if name in self._entries and not overwrite:
            prev = self._entries[name]
            raise RegistryError(
                f"{self.kind} {name!r} is already registered (from {prev.origin}: "
                f"{prev.target!r}); pass overwrite=True to replace it."
            )
        self._entries[name] = Entry(name, target, tuple(requires), extra, origin)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            origin = f"entry point of {dist.name}" if dist is not None else "entry point"
            self.register(ep.name, ep.value, origin=origin)

    def names(self) -> list[str]:
        """All registered names, installed or not, sorted."""
        self._load_entry_points()
        return sorted(self._entries)

    def available(self) -> list[str]:
        """Names whose required frameworks are installed (checked without importing them)."""
        self._load_entry_points()
        return [n for n in sorted(self._entries) if not self._entries[n].missing()]

    def entry(self, name: str) -> Entry:
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(
                f"Unknown {self.kind} {name!r}. Expected one of: {known}."
            ) from None

    def get(self, name: str) -> Any:
        """Import (once) and return the implementation registered as ``name``."""
        return self.entry(name).load()

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries


backends = Registry("backend", "dlbench.backends")
datasets = Registry("dataset", "dlbench.datasets")
models = Registry("model", "dlbench.models")
metrics = Registry("metric", "dlbench.metrics")

_B = "dlbench.backends"
backends.register("numpy", f"{_B}.numpy.backend:NumpyBackend")
backends.register("torch", f"{_B}.torch.backend:TorchBackend", requires=["torch"], extra="torch")
backends.register(
    "tensorflow",
    f"{_B}.tensorflow.backend:TensorFlowBackend",
    requires=["tensorflow"],
    extra="tensorflow",
)
backends.register("jax", f"{_B}.jax.backend:JaxBackend", requires=["jax"], extra="jax")
backends.register(
    "onnxruntime",
    f"{_B}.onnxruntime.backend:OnnxRuntimeBackend",
    requires=["onnxruntime", "onnx"],
    extra="onnx",
)

_D = "dlbench.adapters.datasets"
datasets.register("digits", f"{_D}.digits:DigitsDataset")
datasets.register("synthetic", f"{_D}.synthetic:SyntheticDataset")
datasets.register("cifar10", f"{_D}.cifar:Cifar10")
datasets.register("cifar100", f"{_D}.cifar:Cifar100")
datasets.register("coco", f"{_D}.coco:CocoDetection")
datasets.register("imagefolder", f"{_D}.imagefolder:ImageFolder")

_M = "dlbench.metrics"
for _name, _cls in {
    "accuracy": "Accuracy",
    "top_k_accuracy": "TopKAccuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1Score",
    "confusion_matrix": "ConfusionMatrix",
    "roc_auc": "RocAuc",
    "log_loss": "LogLoss",
    "mse": "MeanSquaredError",
    "mae": "MeanAbsoluteError",
    "r2": "R2Score",
    "ece": "CalibrationError",
    "coco_map": "CocoMeanAveragePrecision",
}.items():
    metrics.register(_name, f"{_M}:{_cls}")
