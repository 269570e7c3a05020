"""Export a TensorFlow model (a dlbench spec module, a ``keras.Model`` or a ``tf.Module``) to ONNX.

Exporter: ``tf2onnx`` (``tf2onnx.convert.from_function`` on a ``tf.function`` with an explicit
input signature). Keras 3's own ``model.export(format="onnx")`` calls the same converter on the
TensorFlow backend, but only for ``keras.Model``; going to tf2onnx directly also covers
``tf.Module`` and plain functions, and lets the exported graph take dlbench's canonical NCHW
input with the NHWC transpose inside it, like the models exported from PyTorch and JAX.

TensorFlow computes exact GELU with ``Erfc``, an op tf2onnx 1.17 does not convert; it is
rewritten here as ``1 - Erf(x)``, which ONNX has.

The traced function is frozen first (``convert_variables_to_constants_v2``): every captured
variable *and* captured constant tensor (a Keras ``Normalization`` layer's mean and variance,
``keras.applications.EfficientNetB0``'s rescaling) becomes a constant, so the ONNX graph has the
model's one input, not one more input per capture. A tf2onnx failure is an
:class:`~dlbench.export.errors.ExportError` naming the exporter and, when the message names one,
the TensorFlow node and its Keras layer.

Example:
    >>> from dlbench.export import to_onnx
    >>> to_onnx(dlbench.zoo.get("mlp"), "mlp.onnx", source="tensorflow")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlbench.backends.common.weights import NCHW_TO_NHWC  # noqa: E402
from dlbench.export.errors import ExportError  # noqa: E402
from dlbench.export.request import ExportRequest
from dlbench.model.backend import Model  # noqa: E402

EXPORTERS = ("tf2onnx",)


def native_call(model: Model) -> tuple[Callable[[tf.Tensor], Any], str]:
    """``(fn, layout)``: the callable behind a dlbench TensorFlow model and the layout of its
    4-D input (``NHWC`` or ``NCHW``); dlbench feeds NCHW."""
    module = getattr(model, "module", None)
    if module is not None and hasattr(module, "plan"):  # built from a spec
        return module.__call__, "NHWC" if module.input_rank == 4 else "NCHW"
    call = getattr(model, "native_call", None)
    if call is not None:  # wrapped
        return call, model.layout  # type: ignore[attr-defined]
    raise ExportError(
        f"Expected a dlbench TensorFlow model (from build or wrap). Received: {type(model).__name__}"
    )


def _erfc(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx handler: ``Erfc(x)`` -> ``1 - Erf(x)``."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output(
        "Sub", node.output[0], inputs=[one.output[0], node.output[0]], name=utils.make_name(name)
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _frozen(fn: Any) -> tuple[Any, list[str], list[str]]:
    """``(graph_def, input names, output names)`` of ``fn``'s concrete function with every
    capture (variables and constant tensors alike) folded into constants."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    return frozen.graph.as_graph_def(), inputs, outputs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


_NODE = re.compile(r"(?:node|op|Node|Op)\s*[:'\"]?\s*'?([A-Za-z_][\w.\-]*(?:/[\w.\-]+)+)")


def _where(exc: BaseException) -> str:
    """`` at node N (layer L)`` when the exception's text names a TensorFlow node path."""
    text = str(exc)
    m = _NODE.search(text)
    if not m:
        return ""
    node = m.group(1).split(":")[0]
    parts = node.split("/")
    layer = parts[1] if len(parts) > 2 else parts[0]
    return f" at node {node!r} (layer {layer!r})"


def max_opset() -> int:
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def export_onnx(model: Model, request: ExportRequest) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """``(proto, info)``: the model as ONNX taking NCHW input, and what made it."""
    input_shape, opset, dynamic_batch, batch_size, input_names, output_names, exporter = (
        request.unpack()
    )
    import tf2onnx

    if exporter not in EXPORTERS:  # pragma: no cover - checked by the caller
        raise ExportError(f"Expected exporter in {EXPORTERS}. Received: {exporter!r}")
    top = max_opset()
    if opset > top:
        raise ExportError(
            f"tf2onnx {tf2onnx.__version__} exports ONNX opsets up to {top}. Received: opset={opset}"
        )
    fn, layout = native_call(model)
    transpose = layout == "NHWC" and len(input_shape) == 3
    signature = [
        tf.TensorSpec(
            [None if dynamic_batch else batch_size, *input_shape], tf.float32, name=input_names[0]
        )
    ]

    @tf.function(input_signature=signature, autograph=False)
    def exported(x: tf.Tensor) -> Any:
        return fn(tf.transpose(x, NCHW_TO_NHWC) if transpose else x)

    try:
        graph_def, in_names, out_names = _frozen(exported)
    except Exception as exc:
        raise ExportError(
            f"Could not trace and freeze the TensorFlow model for tf2onnx "
            f"{tf2onnx.__version__}{_where(exc)}: {_first_line(exc)}"
        ) from exc
    try:
        with _quiet():
            proto, _ = tf2onnx.convert.from_graph_def(
                graph_def,
                input_names=in_names,
                output_names=out_names,
                opset=opset,
                custom_op_handlers={"Erfc": (_erfc, [])},
            )
    except Exception as exc:
        raise ExportError(
            f"tf2onnx {tf2onnx.__version__} could not export the model to ONNX opset "
            f"{opset}{_where(exc)}: {_first_line(exc)}"
        ) from exc
    return proto, {
        "exporter": exporter,
        "versions": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__},
    }
