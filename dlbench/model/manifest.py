"""Backend manifests: what the core knows about a backend without importing its framework.

Each ``dlbench/backends/<name>/config.py`` holds one :class:`BackendManifest` (the
config/implementation split of optimum-benchmark): the name, the modules it needs and the extra
that installs them, an options dataclass checked in the parent before any worker starts, the
environment a worker needs for a thread count, what its out-of-memory errors look like, and its
capabilities as lazy ``"module:attr"`` strings. The registry (:mod:`dlbench.registry`) registers
backends by manifest; a third-party package points its ``dlbench.backends`` entry point at a
manifest and gets every capability a built-in has (build, wrap, export to ONNX, train).

Example:
    >>> from dlbench.registry import backends
    >>> m = backends.manifest("numpy")
    >>> m.name, m.has("build"), m.has("train")
    ('numpy', True, False)
    >>> m.validate_options({"intra_op_threads": 2})["intra_op_threads"]
    2
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from dlbench.errors import ConfigError, RegistryError

#: The capabilities a manifest may declare, each a lazy ``"module:attr"`` string:
#: ``build`` (the Backend class), ``wrap`` (the function/method wrapping a native model),
#: ``export`` (``export_onnx(model, request) -> (proto, info)``, request an ``ExportRequest``), ``train``
#: (``make_trainer(spec, config, device)``), ``devices`` (device kinds it can use, resolved by
#: the Backend's own ``devices()``).
CAPABILITIES = ("build", "wrap", "export", "train", "devices")
PRECISIONS = ("float32", "bfloat16", "float16", "int8")
QUANTIZATIONS = ("static", "dynamic")

#: Out-of-memory markers every backend shares: Python/NumPy ``MemoryError`` (also NumPy's
#: ``_ArrayMemoryError``) and the generic message.
GENERIC_OOM_TYPES = ("MemoryError",)
GENERIC_OOM_MESSAGES = ("out of memory",)


def conventional_capabilities(
    package: str,
    backend_class: str,
    *,
    wrap: str | None = None,
    export: bool = False,
    train: bool = False,
) -> dict[str, str]:
    """The capability strings of a backend folder laid out by convention (``backend.py`` with
    the Backend class, ``wrap.py``, ``export.py`` with ``export_onnx``, ``training.py`` with
    ``make_trainer``), e.g. ``conventional_capabilities("my_pkg.fw", "FwBackend",
    wrap="wrap_model", export=True, train=True)``."""
    caps = {
        "build": f"{package}.backend:{backend_class}",
        "devices": f"{package}.backend:{backend_class}.devices",
    }
    if wrap:
        caps["wrap"] = f"{package}.wrap:{wrap}"
    if export:
        caps["export"] = f"{package}.export:export_onnx"
    if train:
        caps["train"] = f"{package}.training:make_trainer"
    return caps


def load_attr(target: str) -> Any:
    """Import ``"pkg.module:attr.sub"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _check_positive_or_none(backend: str, key: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(
            f"Backend {backend!r}: expected `{key}` to be a positive int or None. "
            f"Received: {key}={value!r}"
        )


def check_choice(backend: str, key: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"Backend {backend!r}: expected `{key}` to be one of {list(choices)}. "
            f"Received: {key}={value!r}"
        )


def check_type(backend: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is an instance of ``types`` (no bool for int)."""
    bad = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
    if bad:
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise ConfigError(
            f"Backend {backend!r}: expected `{key}` to be {names}. Received: {key}={value!r}"
        )


@dataclass
class BackendOptions:
    """Options every backend accepts; a backend's manifest subclasses this with its own fields.

    Values are checked in ``__post_init__``, which imports no framework, so a bad value is a
    :class:`ConfigError` in the parent, before any worker starts.
    """

    backend: ClassVar[str] = "backend"

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    precision: str = "float32"
    #: int8 post-training quantization: ``static`` (activations calibrated on the train split)
    #: or ``dynamic`` (weights only; activations quantized at run time)
    quantization: str = "static"

    def __post_init__(self) -> None:
        _check_positive_or_none(self.backend, "intra_op_threads", self.intra_op_threads)
        _check_positive_or_none(self.backend, "inter_op_threads", self.inter_op_threads)
        check_choice(self.backend, "precision", self.precision, PRECISIONS)
        check_choice(self.backend, "quantization", self.quantization, QUANTIZATIONS)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _no_env(intra: int, inter: int) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class BackendManifest:
    """Everything the parent process knows about one backend, without importing it.

    Args:
        name: The registry name (``dlbench.get_backend(name)``).
        requires: Python modules it needs, checked with ``find_spec`` (nothing imported).
        extra: The ``pip install 'dlbench[extra]'`` that installs them.
        capabilities: ``{capability: "module:attr"}``, among :data:`CAPABILITIES`; ``build`` is
            required and names the Backend class.
        options: The options dataclass (a :class:`BackendOptions` subclass), or None to accept
            only the common options.
        worker_env: ``(intra, inter) -> {VAR: value}``, the environment its framework reads at
            import time (thread pools, allocator, log level), set before a worker starts.
        env_vars: Environment variables worth recording in the result (they change threads or
            what is computed), on top of the generic ones.
        distributions: ``{key: (distribution, ...)}`` whose versions the environment reports
            (found from package metadata, nothing imported).
        oom_types: Exception class names (anywhere in the MRO) meaning "out of memory".
        oom_messages: Lower-case message fragments meaning "out of memory" for generic types.
        native_modules: ``{top-level module: what its objects are}`` for the native models it
            wraps (``"a PyTorch module"``): ``to_onnx`` infers the export source of a native
            model from these, and a native model handed to the timer is named with them.
        exporters: ONNX exporters for the ``export`` capability, the default first, each with
            the modules it needs beyond ``requires`` (``{exporter: (module, ...)}``).
        module_extras: The extra installing each module an exporter needs.
        priority: Lower comes first wherever backends are listed in an order that matters: the
            default export source of a spec is the first exporter, the reference of a training
            comparison the first trainer, and in one process torch-like frameworks load before
            others (torch before tensorflow: the reverse can crash).
        runs_onnx: It runs ONNX files (``wrap(path)``): the target of a composite backend and
            the runtime that checks every ONNX export.
        composite: For a composite backend (e.g. ``torch>onnxruntime``): ``(source, target)``.
        frees_activations: Its inference frees each activation after its last use (an eager
            framework, a runtime with a memory planner), so its peak is the largest set of
            tensors alive at once; otherwise the memory check assumes every tensor of the
            forward pass is kept (:mod:`dlbench.analysis.memory_estimate`).
        sorted_dict_outputs: Its ONNX exporters flatten a dict output in sorted key order
            (``tf.nest``, JAX pytrees); otherwise in the dict's insertion order (torch).
    """

    name: str
    requires: tuple[str, ...] = ()
    extra: str | None = None
    capabilities: Mapping[str, str] = field(default_factory=dict)
    options: type[BackendOptions] | None = None
    worker_env: Callable[[int, int], dict[str, str]] = _no_env
    env_vars: tuple[str, ...] = ()
    distributions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    oom_types: tuple[str, ...] = ()
    oom_messages: tuple[str, ...] = ()
    native_modules: Mapping[str, str] = field(default_factory=dict)
    exporters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    module_extras: Mapping[str, str] = field(default_factory=dict)
    priority: int = 100
    runs_onnx: bool = False
    composite: tuple[str, str] | None = None
    frees_activations: bool = False
    sorted_dict_outputs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise RegistryError(f"Expected a non-empty manifest name. Received: {self.name!r}")
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise RegistryError(
                f"Backend {self.name!r}: unknown capabilities {unknown}. "
                f"Expected some of: {list(CAPABILITIES)}"
            )
        if "build" not in self.capabilities and self.composite is None:
            raise RegistryError(f"Backend {self.name!r}: a manifest must declare `build`.")
        if self.exporters and "export" not in self.capabilities:
            raise RegistryError(f"Backend {self.name!r}: exporters without an `export` capability")

    # -- capabilities ------------------------------------------------------------------------
    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def load(self, capability: str) -> Any:
        """Import and return the implementation of ``capability``.

        Raises:
            RegistryError: the backend does not declare it.
        """
        try:
            target = self.capabilities[capability]
        except KeyError:
            raise RegistryError(
                f"Backend {self.name!r} has no {capability!r} capability. It declares: "
                f"{sorted(self.capabilities)}"
            ) from None
        return target if not isinstance(target, str) else load_attr(target)

    # -- options -----------------------------------------------------------------------------
    def option_names(self) -> list[str]:
        return (self.options or BackendOptions).names()

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``options`` (names and values) without importing the framework.

        Returns:
            The options as given (defaults are the backend's business).

        Raises:
            ConfigError: an unknown option, or a bad value.
        """
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"Expected the options of backend {self.name!r} to be a table/dict. "
                f"Received: {options!r}"
            )
        cls = self.options or BackendOptions
        known = cls.names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {unknown} for backend {self.name!r}. "
                f"Expected some of: {sorted(known)}"
            )
        bound = type(f"{cls.__name__}ForCheck", (cls,), {"backend": self.name})
        bound = dataclasses.dataclass(bound)
        try:
            bound(**options)
        except TypeError as exc:  # a required field without a default
            raise ConfigError(f"Backend {self.name!r}: {exc}") from None
        return dict(options)

    # -- out of memory -----------------------------------------------------------------------
    def is_oom(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an out-of-memory error of this backend (or a generic one)."""
        return is_oom(exc, self.oom_types, self.oom_messages)

    # -- from a legacy Backend class ---------------------------------------------------------
    @classmethod
    def from_backend_class(cls, backend_cls: Any, name: str | None = None) -> BackendManifest:
        """A manifest for an entry point that names a Backend class (the older plugin form):
        its options are the class's ``default_options``; it can build, and wrap, export and
        train only through what the class itself offers."""
        defaults = dict(getattr(backend_cls, "default_options", {}) or {})
        opts = dataclasses.make_dataclass(
            f"{backend_cls.__name__}Options",
            [(k, Any, dataclasses.field(default=None)) for k in defaults],
            bases=(_LooseOptions,),
        )
        return cls(
            name=name or getattr(backend_cls, "name", "") or backend_cls.__name__,
            requires=tuple(getattr(backend_cls, "requires", ()) or ()),
            capabilities={"build": backend_cls, "wrap": backend_cls},
            options=opts,
        )


@dataclass
class _LooseOptions(BackendOptions):
    """Options of a legacy Backend class: only the names are checked in the parent."""

    def __post_init__(self) -> None:
        pass


def is_oom(exc: BaseException, types: tuple[str, ...] = (), messages: tuple[str, ...] = ()) -> bool:
    """Whether ``exc`` is an out-of-memory error, by class name (anywhere in its MRO) and by
    message, with the generic markers added; nothing is imported to tell."""
    all_types = set(GENERIC_OOM_TYPES) | set(types)
    if any(c.__name__ in all_types for c in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return any(f in text for f in (*GENERIC_OOM_MESSAGES, *messages))
