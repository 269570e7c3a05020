"""Export a JAX function (a dlbench spec's ``apply`` or a user's ``fn(params, x)``) to ONNX.

Exporter: ``jax2onnx``, which converts the traced jaxpr straight to ONNX. The other route,
``jax2tf`` then ``tf2onnx``, needs TensorFlow installed next to JAX and chains two converters
that are both in maintenance mode (jax2tf's graph serialisation is deprecated; tf2onnx stops at
opset 18); jax2onnx is maintained, needs no TensorFlow, and its output matched every zoo model.
jax2onnx writes opset-18 ``ReduceMean`` below opset 18, so it is used at opset 18 or later.

Parameters are closed over, so they become ONNX initializers.

Example:
    >>> from dlbench.export import to_onnx
    >>> to_onnx(dlbench.zoo.get("mlp"), "mlp.onnx", source="jax")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import onnx

from dlbench.backends.common.weights import NCHW_TO_NHWC
from dlbench.export.errors import ExportError, UnsupportedOpError
from dlbench.export.request import ExportRequest
from dlbench.model.backend import Model

EXPORTERS = ("jax2onnx",)
MIN_OPSET = 18


def native_call(model: Model) -> tuple[Callable[[Any], Any], str]:
    """``(fn(x), layout)``: the model's function with its params bound, and its input layout."""
    apply = getattr(model, "fn", None) or getattr(model, "apply", None)
    if apply is None or not hasattr(model, "params"):
        raise ExportError(
            f"Expected a dlbench JAX model (from build or wrap). Received: {type(model).__name__}"
        )
    params = model.params  # type: ignore[attr-defined]
    raw = getattr(apply, "__wrapped__", apply)  # trace the function, not its jit cache
    return (lambda x: raw(params, x)), getattr(model, "layout", "NCHW")


#: jax2onnx's words for "there is no converter for this primitive": only these are unsupported
#: ops; any other jax2onnx failure (a converter that crashed, a bad shape) is an exporter error.
_NO_CONVERTER = re.compile(
    r"no plugins? (?:is )?registered for primitive|unsupported primitive|"
    r"primitive\W+'?(\w+)'? is not supported",
    re.IGNORECASE,
)
_PRIMITIVE = re.compile(r"primitive[s]?\W+'?\[?'?(\w+)", re.IGNORECASE)


def _explain(exc: BaseException, version: str, opset: int) -> ExportError:
    """A jax2onnx exception as :class:`UnsupportedOpError` (no converter for a primitive) or
    :class:`ExportError` (the exporter failed), naming the exporter and the primitive."""
    text = str(exc).strip()
    prim = _PRIMITIVE.search(text)
    what = f" (primitive {prim.group(1)})" if prim else ""
    detail = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    if _NO_CONVERTER.search(text):
        return UnsupportedOpError(
            f"jax2onnx {version} has no ONNX converter{what} at opset {opset}: {detail}. Replace "
            "it in the function."
        )
    return ExportError(
        f"jax2onnx {version} failed while exporting the function to ONNX opset {opset}{what}: "
        f"{detail}. This is an exporter error, not a missing op."
    )


def export_onnx(model: Model, request: ExportRequest) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """``(proto, info)``: the model as ONNX taking NCHW input, and what made it."""
    input_shape, opset, dynamic_batch, batch_size, input_names, output_names, exporter = (
        request.unpack()
    )
    import jax2onnx

    if exporter not in EXPORTERS:  # pragma: no cover - checked by the caller
        raise ExportError(f"Expected exporter in {EXPORTERS}. Received: {exporter!r}")
    if opset < MIN_OPSET:
        raise ExportError(
            f"jax2onnx exports ONNX opset {MIN_OPSET} or later (below it, it writes invalid "
            f"ReduceMean nodes). Received: opset={opset}"
        )
    fn, layout = native_call(model)
    transpose = layout == "NHWC" and len(input_shape) == 3

    def exported(x: Any) -> Any:
        return fn(jnp.transpose(x, NCHW_TO_NHWC) if transpose else x)

    batch: str | int = "batch" if dynamic_batch else batch_size
    try:
        proto = jax2onnx.to_onnx(
            exported,
            inputs=[(batch, *input_shape)],
            model_name=model.name,
            opset=opset,
            input_names=input_names,
            output_names=output_names,
        )
    except Exception as exc:
        jax.clear_caches()
        raise _explain(exc, _version(jax2onnx), opset) from exc
    # jax2onnx traces with its own primitives patched in; a jit cache entry made meanwhile
    # (a user's inner jax.jit) would hold them and fail to compile later: drop the caches.
    jax.clear_caches()
    fold_lifted_pools(proto)
    return proto, {
        "exporter": exporter,
        "versions": {"jax": jax.__version__, "jax2onnx": _version(jax2onnx)},
    }


def _ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints)
    return None


def _set_ints(node: onnx.NodeProto, name: str, values: list[int]) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, values))


def fold_lifted_pools(proto: onnx.ModelProto) -> int:
    """Undo jax2onnx's lifting of NCHW pooling to 4 spatial dimensions; return how many.

    jax2onnx 0.17 lowers ``lax.reduce_window`` over all four axes of an NCHW tensor as
    ``Unsqueeze(0) -> Unsqueeze(1) -> MaxPool(kernel [1, 1, kh, kw]) -> Squeeze([0, 1])``. ONNX
    allows that, but ONNX Runtime's MaxPool takes at most 3 spatial dimensions ("Unsupported
    pooling size"). The same computation is a plain 2-D pool on the NCHW tensor; rewrite it so.
    """
    import numpy as np
    from onnx import numpy_helper

    g = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}

    def axes(node: onnx.NodeProto) -> list[int] | None:
        if len(node.input) > 1 and node.input[1] in consts:
            return [int(v) for v in np.ravel(consts[node.input[1]])]
        return _ints(node, "axes")

    folded, dead = 0, []
    for pool in list(g.node):
        if pool.op_type not in ("MaxPool", "AveragePool"):
            continue
        kernel = _ints(pool, "kernel_shape") or []
        strides = _ints(pool, "strides") or [1] * len(kernel)
        pads = _ints(pool, "pads") or [0] * (2 * len(kernel))
        dil = _ints(pool, "dilations") or [1] * len(kernel)
        auto = next((a.s for a in pool.attribute if a.name == "auto_pad"), b"NOTSET")
        if (
            len(kernel) != 4
            or kernel[:2] != [1, 1]
            or strides[:2] != [1, 1]
            or dil[:2] != [1, 1]
            or pads[0:2] != [0, 0]
            or pads[4:6] != [0, 0]
            or auto not in (b"", b"NOTSET")
        ):
            continue
        u1 = producer.get(pool.input[0])
        u0 = producer.get(u1.input[0]) if u1 is not None else None
        after = consumers.get(pool.output[0], [])
        if (
            u1 is None
            or u0 is None
            or u1.op_type != "Unsqueeze"
            or u0.op_type != "Unsqueeze"
            or axes(u0) != [0]
            or axes(u1) != [1]
            or len(after) != 1
            or after[0].op_type != "Squeeze"
            or axes(after[0]) != [0, 1]
            or pool.output[0] in outputs
        ):
            continue
        squeeze = after[0]
        pool.input[0] = u0.input[0]
        pool.output[0] = squeeze.output[0]
        _set_ints(pool, "kernel_shape", kernel[2:])
        _set_ints(pool, "strides", strides[2:])
        _set_ints(pool, "pads", [pads[2], pads[3], pads[6], pads[7]])
        if _ints(pool, "dilations") is not None:
            _set_ints(pool, "dilations", dil[2:])
        dead.append(squeeze)
        for u in (u1, u0):
            if len(consumers.get(u.output[0], [])) == 1 and u.output[0] not in outputs:
                dead.append(u)
        folded += 1
    for n in dead:
        if n in g.node:
            g.node.remove(n)
    return folded


def _version(module: Any) -> str:
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version("jax2onnx")
    return str(getattr(module, "__version__", "unknown"))
