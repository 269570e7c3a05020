"""ONNX graph helpers shared by every exporter: load with clear errors, tidy names, summarise.

``onnx`` is imported inside the functions, so importing this module imports no framework.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from dlbench.export.errors import OnnxFileError, UnsupportedOpError

#: Float ONNX tensor types (parameters are counted among these).
_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
#: Custom op domains ONNX Runtime (CPU) implements.
_ORT_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc"}


def load_onnx(source: Any, *, check: bool = True) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a proto, checked with ``onnx.checker``.

    Raises:
        OnnxFileError: the file does not exist, is not an ONNX model, or is not a valid one.
    """
    import onnx

    if isinstance(source, onnx.ModelProto):
        proto, where = source, "the ONNX model"
    elif isinstance(source, (bytes, bytearray)):
        where = "the ONNX bytes"
        proto = _parse(bytes(source), where)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise OnnxFileError(f"ONNX file not found: {path}")
        if not path.is_file():
            raise OnnxFileError(f"Expected an ONNX file. Received a directory: {path}")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # DecodeError and friends
            raise OnnxFileError(
                f"{path} is not an ONNX model (it could not be parsed: {type(exc).__name__}: {exc})"
            ) from None
        if not proto.graph.node and not proto.graph.output:
            raise OnnxFileError(f"{path} is not an ONNX model (it holds no graph)")
    else:
        raise OnnxFileError(
            "Expected an ONNX model: a file path, bytes or an onnx.ModelProto. "
            f"Received: {type(source).__name__}"
        )
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OnnxFileError(
                f"{where} is not a valid ONNX model: onnx.checker says: {first}"
            ) from None
    return proto


def _parse(data: bytes, where: str) -> Any:
    import onnx

    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:
        raise OnnxFileError(f"{where} is not an ONNX model: {type(exc).__name__}: {exc}") from None
    if not proto.graph.node and not proto.graph.output:
        raise OnnxFileError(f"{where} is not an ONNX model (it holds no graph)")
    return proto


def _graphs(graph: Any) -> list[Any]:
    """``graph`` and every subgraph (Loop/If/Scan bodies), depth first."""
    import onnx

    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out.extend(_graphs(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    out.extend(_graphs(g))
    return out


def unsupported_ops(proto: Any) -> dict[str, int]:
    """Ops no ONNX schema (at the model's opsets) or ONNX Runtime domain knows, with counts.

    tf2onnx, for one, leaves an op it cannot convert in the graph under its TensorFlow name
    and only logs it; this finds such leftovers.
    """
    import onnx

    opsets = {o.domain or "": o.version for o in proto.opset_import}
    local = {(f.domain, f.name) for f in proto.functions}
    bad: Counter[str] = Counter()
    for g in _graphs(proto.graph):
        for n in g.node:
            domain = n.domain or ""
            if (domain, n.op_type) in local:
                continue
            if domain in ("", "ai.onnx", "ai.onnx.ml"):
                version = opsets.get(domain, opsets.get("", 1))
                try:
                    onnx.defs.get_schema(n.op_type, version, domain)
                except Exception:
                    bad[f"{n.op_type}" if not domain else f"{domain}::{n.op_type}"] += 1
            elif domain not in _ORT_DOMAINS:
                bad[f"{domain}::{n.op_type}"] += 1
    return dict(bad)


def raise_if_unsupported(proto: Any, *, source: str, exporter: str, opset: int) -> None:
    bad = unsupported_ops(proto)
    if bad:
        ops = ", ".join(f"{op} (x{n})" for op, n in sorted(bad.items()))
        raise UnsupportedOpError(
            f"Export from {source} with {exporter} left op(s) that ONNX opset {opset} does not "
            f"define: {ops}. Replace them in the model, or try another opset or exporter."
        )


def _rename(graph: Any, old: str, new: str) -> None:
    if old == new:
        return
    for g in _graphs(graph):
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == old:
                    n.input[i] = new
            for i, name in enumerate(n.output):
                if name == old:
                    n.output[i] = new
        for vi in [*g.input, *g.output, *g.value_info]:
            if vi.name == old:
                vi.name = new


def finalize(
    proto: Any,
    *,
    input_names: list[str] | None,
    output_names: list[str] | None,
    dynamic_batch: bool,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Give the graph's inputs and outputs the requested names, name a free batch axis
    ``batch``, and record ``metadata`` (as ``dlbench.*`` metadata properties). In place."""
    init = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in init]
    for kind, values, wanted in (
        ("input", inputs, input_names),
        ("output", list(proto.graph.output), output_names),
    ):
        if wanted is None:
            continue
        if len(wanted) > len(values):
            from dlbench.export.errors import ExportError

            raise ExportError(
                f"Expected at most {len(values)} {kind} name(s) (the graph has {len(values)} "
                f"{kind}s). Received: {kind}_names={list(wanted)}"
            )
        for vi, name in zip(values, wanted):
            _rename(proto.graph, vi.name, name)
    if dynamic_batch:
        for vi in [*inputs, *proto.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].dim_param = "batch"
    for key, value in (metadata or {}).items():
        set_metadata(proto, f"dlbench.{key}", value)
    return proto


def set_metadata(proto: Any, key: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = text
            return
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, text


def _shape(vi: Any) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _dtype(vi: Any) -> str:
    import numpy as np
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
    except Exception:
        return onnx.helper.printable_type(vi.type)


def summarize(path_or_proto: Any) -> dict[str, Any]:
    """A summary of an ONNX model: op counts, parameters, file size, opset, inputs and outputs.

    Args:
        path_or_proto: An ONNX file (checked with ``onnx.checker``) or an ``onnx.ModelProto``.

    Returns:
        JSON-safe dict: ``path``, ``file_bytes``, ``opset``, ``ir_version``, ``producer``,
        ``inputs`` / ``outputs`` (name, shape, dtype), ``nodes``, ``op_counts`` (most frequent
        first, subgraphs included), ``params`` (elements of float initializers and constants),
        ``param_bytes``, ``metadata``.

    Example:
        >>> summarize("model.onnx")["op_counts"]  # doctest: +SKIP
        {'Conv': 21, 'Relu': 19, 'Add': 9, ...}
    """
    import numpy as np
    import onnx

    path = None
    if isinstance(path_or_proto, (str, os.PathLike)):
        path = Path(path_or_proto)
    proto = load_onnx(path_or_proto)
    ops: Counter[str] = Counter()
    params = param_bytes = 0
    init = {t.name for t in proto.graph.initializer}

    def tensor_size(t: Any) -> int:
        return int(np.prod(t.dims)) if len(t.dims) else 1

    for g in _graphs(proto.graph):
        for t in g.initializer:
            if t.data_type in _FLOAT_TYPES:
                n = tensor_size(t)
                params += n
                param_bytes += (
                    n * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
                )
        for node in g.node:
            ops[node.op_type if not node.domain else f"{node.domain}::{node.op_type}"] += 1
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value" and a.t.data_type in _FLOAT_TYPES and tensor_size(a.t) > 1:
                        n = tensor_size(a.t)
                        params += n
                        param_bytes += (
                            n
                            * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(a.t.data_type)).itemsize
                        )
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "path": str(path) if path else None,
        "file_bytes": path.stat().st_size if path else proto.ByteSize(),
        "opset": opset,
        "ir_version": int(proto.ir_version),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [
            {
                "name": i.name,
                "shape": _shape(i),
                "dtype": _dtype(i),
            }
            for i in proto.graph.input
            if i.name not in init
        ],
        "outputs": [
            {
                "name": o.name,
                "shape": _shape(o),
                "dtype": _dtype(o),
            }
            for o in proto.graph.output
        ],
        "nodes": int(sum(ops.values())),
        "op_counts": dict(ops.most_common()),
        "params": int(params),
        "param_bytes": int(param_bytes),
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }
