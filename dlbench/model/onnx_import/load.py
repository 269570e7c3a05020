"""Reading an ONNX model safely: parse, check, resolve external data inside its folder, limits.

Everything that can go wrong with a corrupt or hostile file (bad protobuf, external data that
points outside the model's folder or past the end of its file, absurd shapes, an opset outside
13..21) is a :class:`~dlbench.errors.SpecError` here, before any conversion starts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from dlbench.errors import SpecError

#: Opsets of the default ONNX domain the importer follows.
MIN_OPSET, MAX_OPSET = 13, 21
#: Largest tensor (elements) the importer accepts, in a weight, a folded constant or an input.
MAX_ELEMENTS = 2**31
#: Largest ONNX file read into memory (bytes); protobuf itself stops at 2 GiB.
MAX_FILE_BYTES = 2**31


def _onnx():
    try:
        import onnx
    except ImportError:
        from dlbench.errors import MissingFrameworkError

        raise MissingFrameworkError(
            "Importing ONNX models needs the onnx package: pip install 'dlbench[onnx]'"
        ) from None
    return onnx


def check_elements(dims: Any, what: str) -> int:
    """Number of elements of ``dims``; a SpecError when a dim is negative or the total absurd."""
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise SpecError(f"{what}: expected non-negative dimensions. Received: {dims}")
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise SpecError(
            f"{what}: {n} elements (shape {dims}) is more than the {MAX_ELEMENTS} the importer "
            "accepts"
        )
    return n


def _external_tensors(model: Any) -> list[Any]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return [t for t in _get_all_tensors(model) if uses_external_data(t)]


def _check_external(model: Any, base: Path) -> None:
    """Every external-data reference must name a file inside ``base`` and a range inside it."""
    root = base.resolve()
    for t in _external_tensors(model):
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        p = Path(loc)
        if not loc or p.is_absolute() or ".." in p.parts or loc.startswith(("/", "\\")):
            raise SpecError(
                f"Tensor {t.name!r}: external data location {loc!r} must be a relative path "
                f"inside the model's folder {root}"
            )
        target = (root / p).resolve()
        if not target.is_relative_to(root):
            raise SpecError(
                f"Tensor {t.name!r}: external data {loc!r} resolves to {target}, outside the "
                f"model's folder {root}"
            )
        if not target.is_file():
            raise SpecError(f"Tensor {t.name!r}: external data file {target} not found")
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            raise SpecError(f"Tensor {t.name!r}: malformed external data offset/length") from None
        size = target.stat().st_size
        if (
            offset < 0
            or offset > size
            or (length is not None and (length < 0 or offset + length > size))
        ):
            raise SpecError(
                f"Tensor {t.name!r}: external data range offset={offset} length={length} lies "
                f"outside {target} ({size} bytes)"
            )
        check_elements(t.dims, f"Tensor {t.name!r}")


def load_model(source: Any) -> tuple[Any, str]:
    """Parse and check ``source`` (a path or an ``onnx.ModelProto``); return (model, name)."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        if _external_tensors(model):
            raise SpecError(
                "The ONNX model keeps weights in external data files; pass its path instead of "
                "the loaded ModelProto so they can be found (and checked) next to it"
            )
        name = model.graph.name or "onnx_model"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"ONNX file not found: {path}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(f"ONNX file {path} is {size} bytes, over the {MAX_FILE_BYTES} limit")
        model = onnx.ModelProto()
        try:
            model.ParseFromString(path.read_bytes())
        except Exception as exc:  # google.protobuf.message.DecodeError and friends
            raise SpecError(f"{path} is not a valid ONNX file (protobuf: {exc})") from None
        if not model.HasField("graph"):
            raise SpecError(f"{path} is not an ONNX model: it has no graph")
        _check_external(model, path.parent)
        if _external_tensors(model):
            from onnx.external_data_helper import load_external_data_for_model

            try:
                load_external_data_for_model(model, str(path.parent))
            except Exception as exc:
                raise SpecError(f"{path}: cannot read external data ({exc})") from None
        name = path.stem
    else:
        raise SpecError(
            "Expected a path to an .onnx file or an onnx.ModelProto. "
            f"Received: {type(source).__name__}"
        )
    opset = default_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise SpecError(
            f"Expected an ONNX model of opset {MIN_OPSET} to {MAX_OPSET} (default domain). "
            f"Received: opset {opset}. Convert it first, e.g. onnx.version_converter."
            "convert_version(model, 17)"
        )
    for t in model.graph.initializer:
        check_elements(t.dims, f"Initializer {t.name!r}")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise SpecError(f"The ONNX model {name!r} does not pass onnx.checker: {exc}") from None
    return model, name


def default_opset(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    raise SpecError("The ONNX model imports no opset of the default domain")
