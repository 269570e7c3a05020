"""Which exporters exist for which source framework, and what each needs (found without imports)."""

from __future__ import annotations

from dlbench.registry import is_installed

#: Source framework -> exporters, the default first.
EXPORTERS: dict[str, tuple[str, ...]] = {
    "torch": ("dynamo", "torchscript"),
    "tensorflow": ("tf2onnx",),
    "jax": ("jax2onnx",),
}
SOURCES = tuple(EXPORTERS)

#: (source, exporter) -> Python modules it needs, beyond onnx and onnxruntime for the check.
_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("torch", "dynamo"): ("torch", "onnxscript"),
    ("torch", "torchscript"): ("torch",),
    ("tensorflow", "tf2onnx"): ("tensorflow", "tf2onnx"),
    ("jax", "jax2onnx"): ("jax", "jax2onnx"),
}
_EXTRA = {
    "torch": "torch",
    "onnxscript": "export",
    "tensorflow": "tensorflow",
    "tf2onnx": "export",
    "jax": "jax",
    "jax2onnx": "export",
    "onnx": "onnx",
    "onnxruntime": "onnx",
}

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
    if exporter is None:
        return EXPORTERS[source][0]
    if exporter not in EXPORTERS[source]:
        raise ConfigError(
            f"Expected an exporter for {source} among {list(EXPORTERS[source])}. "
            f"Received: exporter={exporter!r}"
        )
    return exporter


def missing(source: str, exporter: str | None = None) -> list[str]:
    """Modules the export from ``source`` (and its check in ONNX Runtime) needs but lacks."""
    exporter = check_exporter(source, exporter)
    needs = (*_NEEDS[(source, exporter)], "onnx", "onnxruntime")
    return [m for m in needs if not is_installed(m)]


def missing_message(source: str, exporter: str | None = None) -> str | None:
    """One line naming what to install, or None when everything is there."""
    gone = missing(source, exporter)
    if not gone:
        return None
    extras = sorted({_EXTRA.get(m, "export") for m in gone})
    hint = " ".join(f"'dlbench[{e}]'" for e in extras)
    return (
        f"Export from {source} ({check_exporter(source, exporter)}) needs {', '.join(gone)}, "
        f"which is not installed. Install it with: pip install {hint}"
    )
