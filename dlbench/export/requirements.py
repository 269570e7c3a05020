"""Which exporters exist for which source backend, and what each needs (found without imports).

Read from the backends' manifests (their ``export`` capability and ``exporters``), so a backend
added by entry point exports exactly like a built-in. :data:`EXPORTERS` and :data:`SOURCES` are
live views of the registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dlbench.registry import backends as _backends
from dlbench.registry import is_installed


class _Exporters(Mapping[str, tuple[str, ...]]):
    """Source backend -> its exporters, the default first (a live view of the registry)."""

    def __getitem__(self, source: str) -> tuple[str, ...]:
        if source not in _backends.export_sources():
            raise KeyError(source)
        return tuple(_backends.manifest(source).exporters)

    def __iter__(self) -> Iterator[str]:
        return iter(_backends.export_sources())

    def __len__(self) -> int:
        return len(_backends.export_sources())

    def __repr__(self) -> str:
        return repr(dict(self))


class _Sources(Sequence[str]):
    """The backends that export to ONNX (a live view of the registry), the default first."""

    def __getitem__(self, i: Any) -> Any:
        return _backends.export_sources()[i]

    def __len__(self) -> int:
        return len(_backends.export_sources())

    def __contains__(self, name: object) -> bool:
        return name in _backends.export_sources()

    def __repr__(self) -> str:
        return repr(tuple(self))


#: Source backend -> exporters, the default first.
EXPORTERS: Mapping[str, tuple[str, ...]] = _Exporters()
SOURCES: Sequence[str] = _Sources()

#: Default ONNX opset for every source: the newest one all three exporters produce correctly
#: (tf2onnx 1.17 stops at 18; jax2onnx emits opset-18 ReduceMean below 18), so models exported
#: from different frameworks are compared at the same opset.
DEFAULT_OPSET = 18


def check_exporter(source: str, exporter: str | None) -> str:
    """The exporter to use for ``source`` (its default when None); raise on an unknown one."""
    from dlbench.errors import ConfigError

    if source not in EXPORTERS:
        raise ConfigError(
            f"Expected the export source to be one of {list(SOURCES)}. Received: source={source!r}"
        )
    exporters = EXPORTERS[source]
    if exporter is None:
        if not exporters:
            raise ConfigError(f"Backend {source!r} declares an export capability but no exporter")
        return exporters[0]
    if exporter not in exporters:
        raise ConfigError(
            f"Expected an exporter for {source} among {list(exporters)}. "
            f"Received: exporter={exporter!r}"
        )
    return exporter


def _needs(source: str, exporter: str) -> tuple[str, ...]:
    """Modules an export needs: the source's, the exporter's, and the ONNX runtime's (the
    export is checked there)."""
    manifest = _backends.manifest(source)
    runtime = _backends.onnx_runtime()
    checker = tuple(_backends.manifest(runtime).requires) if runtime else ()
    # the runtime's modules in its own order, after the source's: torch, onnxscript, onnx, ...
    checker = tuple(sorted(checker, key=lambda m: (m != "onnx", m)))
    out: list[str] = []
    for m in (*manifest.requires, *manifest.exporters.get(exporter, ()), *checker):
        if m not in out:
            out.append(m)
    return tuple(out)


def missing(source: str, exporter: str | None = None) -> list[str]:
    """Modules the export from ``source`` (and its check in ONNX Runtime) needs but lacks."""
    exporter = check_exporter(source, exporter)
    return [m for m in _needs(source, exporter) if not is_installed(m)]


def _extra(source: str, module: str) -> str:
    """The extra that installs ``module``: the backend that requires it, else the source's
    exporter extras, else ``export``."""
    for manifest in _backends.manifests():
        if module in manifest.requires and manifest.extra:
            return manifest.extra
    return _backends.manifest(source).module_extras.get(module, "export")


def missing_message(source: str, exporter: str | None = None) -> str | None:
    """One line naming what to install, or None when everything is there."""
    gone = missing(source, exporter)
    if not gone:
        return None
    extras = sorted({_extra(source, m) for m in gone})
    hint = " ".join(f"'dlbench[{e}]'" for e in extras)
    return (
        f"Export from {source} ({check_exporter(source, exporter)}) needs {', '.join(gone)}, "
        f"which is not installed. Install it with: pip install {hint}"
    )
