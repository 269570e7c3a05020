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

import dataclasses
import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
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


#: The separator of a composite backend's name: ``torch>onnxruntime`` is the model exported from
#: torch to ONNX and run in onnxruntime.
VIA = ">"


@dataclass
class BackendEntry(Entry):
    """A backend: its manifest (a :class:`~dlbench.model.manifest.BackendManifest`, or a
    ``"module:attr"`` string naming one), or, for an entry point, whatever it points at (a
    manifest, or a Backend class as plugins did before manifests)."""

    manifest_ref: Any = field(default=None, repr=False)
    _missing: Any = field(default=None, repr=False)

    def manifest(self) -> Any:
        """The manifest, imported on first use (manifests import no framework)."""
        from dlbench.model.manifest import BackendManifest, load_attr

        ref = self.manifest_ref
        if isinstance(ref, BackendManifest):
            return ref
        if isinstance(ref, str):
            obj = load_attr(ref)
        elif ref is None:  # an entry point: a manifest or a Backend class
            obj = load_attr(self.target) if isinstance(self.target, str) else self.target
            if not isinstance(obj, BackendManifest):
                if not isinstance(obj, type):
                    raise RegistryError(
                        f"Expected backend {self.name!r} ({self.origin}: {self.target!r}) to be a "
                        f"BackendManifest or a Backend class. Received: {type(obj).__name__}"
                    )
                obj = BackendManifest.from_backend_class(obj, self.name)
        else:
            obj = ref
        if not isinstance(obj, BackendManifest):
            raise RegistryError(
                f"Expected {ref!r} to be a BackendManifest. Received: {type(obj).__name__}"
            )
        if obj.name != self.name:  # the registered name wins (a plugin may reuse a manifest)
            obj = dataclasses.replace(obj, name=self.name)
        if not obj.requires and self.requires:  # declared at registration
            obj = dataclasses.replace(obj, requires=self.requires, extra=self.extra)
        self.manifest_ref = obj
        self.requires, self.extra = tuple(obj.requires), obj.extra
        return obj

    def missing(self) -> list[str]:
        if self.manifest_ref is None and self.requires:  # declared at registration: no import
            return [m for m in self.requires if not is_installed(m)]
        try:
            manifest = self.manifest()
        except ImportError as exc:  # an entry point whose module needs an absent framework
            return [getattr(exc, "name", None) or str(exc)]
        if manifest.composite is not None:
            return list(self._missing or [])
        return [m for m in manifest.requires if not is_installed(m)]

    def missing_message(self) -> str | None:
        if self.manifest_ref is None and self.missing():  # declared requirements are absent
            return super().missing_message()
        manifest = self.manifest()
        if manifest.composite is not None:
            from dlbench.export.requirements import missing_message

            return missing_message(manifest.composite[0])
        return super().missing_message()

    def load(self) -> Any:
        """The Backend class (for a composite: the target's, which wraps the exported file)."""
        if self._loaded is not None:
            return self._loaded
        message = self.missing_message()
        if message:
            raise MissingFrameworkError(message)
        self._loaded = self.manifest().load("build")
        return self._loaded


class BackendRegistry(Registry):
    """Backends, registered by manifest; composite names (``source>target``) resolve to a
    backend whose preparation step exports the model from ``source`` to ONNX."""

    def register(
        self,
        name: str,
        target: Any,
        *,
        requires: Iterable[str] = (),
        extra: str | None = None,
        overwrite: bool = False,
        origin: str = "builtin",
        manifest: Any = None,
    ) -> None:
        """Register a backend under ``name``: ``target`` is a Backend class, a manifest, or a
        ``"module:attr"`` string naming either (resolved on first use)."""
        super().register(
            name, target, requires=requires, extra=extra, overwrite=overwrite, origin=origin
        )
        from dlbench.model.manifest import BackendManifest

        old = self._entries[name]
        if manifest is None and isinstance(target, BackendManifest):
            manifest = target
        self._entries[name] = BackendEntry(
            name, target, old.requires, old.extra, origin, manifest_ref=manifest
        )

    def register_manifest(
        self, manifest: Any, *, name: str | None = None, overwrite: bool = False, origin="builtin"
    ) -> None:
        """Register a backend by its manifest (or a ``"module:attr"`` string naming one, which
        is imported when first needed). ``name`` defaults to the manifest's (for a string: the
        package folder, ``dlbench.backends.<name>.config``)."""
        if name is None:
            name = manifest.name if not isinstance(manifest, str) else _name_from_ref(manifest)
        self.register(name, manifest, overwrite=overwrite, origin=origin, manifest=manifest)

    def entry(self, name: str) -> BackendEntry:
        self._load_entry_points()
        if name not in self._entries and isinstance(name, str) and VIA in name:
            composite = self._composite(name)
            if composite is not None:
                return composite
        return super().entry(name)  # type: ignore[return-value]

    def manifest(self, name: str) -> Any:
        """The manifest of backend ``name`` (nothing but the manifest module is imported)."""
        return self.entry(name).manifest()

    def manifests(self) -> list[Any]:
        """The manifests of every registered backend (composites excluded), in ``priority``
        order (then by name)."""
        ms = [self.manifest(n) for n in self.names()]
        return sorted(ms, key=lambda m: (m.priority, m.name))

    def capability(self, name: str, capability: str) -> Any:
        """Import and return backend ``name``'s implementation of ``capability``.

        Raises:
            RegistryError: unknown backend, or it lacks the capability.
            MissingFrameworkError: its framework is not installed.
        """
        entry = self.entry(name)
        manifest = entry.manifest()
        if not manifest.has(capability):
            manifest.load(capability)  # raises, naming what it declares
        message = entry.missing_message()
        if message:
            raise MissingFrameworkError(message)
        return manifest.load(capability)

    def with_capability(self, capability: str) -> list[str]:
        """Names of the backends declaring ``capability`` (installed or not), in their
        manifests' ``priority`` order."""
        return [m.name for m in self.manifests() if m.has(capability)]

    def export_sources(self) -> list[str]:
        """Backends that export to ONNX, in ``priority`` order (the first is the default
        source of a spec)."""
        return self.with_capability("export")

    def onnx_runtime(self) -> str | None:
        """The backend that runs ONNX files (checks every export; target of composites)."""
        runners = [m.name for m in self.manifests() if m.runs_onnx]
        return runners[0] if runners else None

    def native_owner(self, module: str) -> tuple[str, str] | None:
        """``(what it is, backend)`` for a native object whose class comes from top-level
        ``module`` (``"torch"`` -> ``("a PyTorch module", "torch")``); None if no backend
        wraps it."""
        for manifest in self.manifests():
            if module in manifest.native_modules:
                return manifest.native_modules[module], manifest.name
        return None

    def import_order(self, names: list[str]) -> list[str]:
        """``names`` (``"backend"`` or ``"backend:mode"``) sorted so frameworks that must load
        first in a shared process do (the manifests' ``priority``: torch before tensorflow)."""

        def rank(name: str) -> int:
            base = name.split(":")[0]
            return self.manifest(base).priority if base in self else 1000

        return sorted(names, key=rank)

    def composite_parts(self, name: str) -> tuple[str, str] | None:
        """``("torch", "onnxruntime")`` for ``"torch>onnxruntime"``; None for a name that is
        not a valid composite (source without export, or target that cannot run ONNX)."""
        source, sep, target = name.partition(VIA)
        if not sep or source not in self or target not in self:
            return None
        if not self.manifest(source).has("export") or not self.manifest(target).runs_onnx:
            return None
        return source, target

    def _composite(self, name: str) -> BackendEntry | None:
        from dlbench.model.manifest import BackendManifest

        parts = self.composite_parts(name)
        if parts is None:
            return None
        source, target = parts
        src, tgt = self.manifest(source), self.manifest(target)
        from dlbench.export.requirements import missing

        manifest = BackendManifest(
            name=name,
            requires=(*src.requires, *tgt.requires),
            extra=tgt.extra,
            capabilities={k: v for k, v in tgt.capabilities.items() if k in ("build", "wrap")},
            options=tgt.options,
            worker_env=tgt.worker_env,
            oom_types=tgt.oom_types,
            oom_messages=tgt.oom_messages,
            composite=(source, target),
        )
        entry = BackendEntry(
            name,
            manifest.capabilities["build"],
            manifest.requires,
            tgt.extra,
            f"composite of {source} and {target}",
            manifest_ref=manifest,
        )
        entry._missing = missing(source)
        return entry


def _name_from_ref(ref: str) -> str:
    module = ref.partition(":")[0].split(".")
    return module[-2] if len(module) >= 2 and module[-1] == "config" else module[-1]


backends = BackendRegistry("backend", "dlbench.backends")
datasets = Registry("dataset", "dlbench.datasets")
models = Registry("model", "dlbench.models")
metrics = Registry("metric", "dlbench.metrics")


# The built-in backends, by manifest: every folder of dlbench/backends/ with a config.py (its
# MANIFEST imports no framework; it is imported when the backend is first looked at).
def _builtin_backends() -> list[str]:
    spec = importlib.util.find_spec("dlbench.backends")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return sorted({d.name for f in folders for d in f.iterdir() if (d / "config.py").is_file()})


for _name in _builtin_backends():
    backends.register_manifest(f"dlbench.backends.{_name}.config:MANIFEST", name=_name)

_D = "dlbench.adapters.datasets"
datasets.register("digits", f"{_D}.digits:DigitsDataset")
datasets.register("synthetic", f"{_D}.synthetic:SyntheticDataset")
datasets.register("cifar10", f"{_D}.cifar:Cifar10")
datasets.register("cifar100", f"{_D}.cifar:Cifar100")
datasets.register("coco", f"{_D}.coco:CocoDetection")
datasets.register("shapes", f"{_D}.shapes:ShapesDataset")
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
