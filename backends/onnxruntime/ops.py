"""ModelSpec ops as ONNX nodes (default opset 17), for ONNX Runtime.

:class:`OnnxGraph` collects nodes and initializers; the emitter op table
(:class:`~dlbench.backends.common.optable.EmitterTable`) has one function per spec op, called as
``fn(graph, xs, node)``, that adds the ONNX nodes computing it. The batch dimension is symbolic (``"N"``). Pooling with padding or ceil
mode is lowered to an explicit ``Pad`` and a VALID pool (with a constant divisor map for
average pooling) so that it means exactly what PyTorch means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlbench.backends.common.optable import EmitterTable, unique_name
from dlbench.backends.common.pooling import avg_pool_divisor
from dlbench.backends.common.weights import dense_to_kernel, gates_ifgo_to_iofc
from dlbench.model.spec import ModelSpec, ResolvedNode

OPSET = 17


class OnnxGraph:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def fresh(self, base: str) -> str:
        return unique_name(base, self._names)

    def const(self, base: str, array: Any, dtype: Any = np.float32) -> str:
        name = self.fresh(base)
        self.initializers.append(
            numpy_helper.from_array(np.array(array, dtype=dtype, order="C"), name)
        )
        return name

    def add(self, op_type: str, inputs: list[str], base: str, n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(base if i == 0 else f"{base}:{i}") for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outs, name=self.fresh(f"{base}/{op_type}"), **attrs)
        )
        return outs[0] if n_out == 1 else outs


OPS = EmitterTable("ONNX Runtime")


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)


@OPS.register("conv2d")
def conv2d(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    a = rn.attrs
    w = rn.params["weight"]
    t, b, l, r = a["pads"]  # noqa: E741
    inputs = [xs[0], g.const(f"{rn.name}.weight", w)]
    if "bias" in rn.params:
        inputs.append(g.const(f"{rn.name}.bias", rn.params["bias"]))
    return g.add(
        "Conv",
        inputs,
        rn.name,
        kernel_shape=list(w.shape[2:]),
        strides=a["stride"],
        pads=[t, l, b, r],
        dilations=a["dilation"],
        group=a["groups"],
    )


@OPS.register("batch_norm")
def batch_norm(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    p = rn.params
    ins = [xs[0]] + [g.const(f"{rn.name}.{k}", p[k]) for k in ("weight", "bias", "mean", "var")]
    return g.add("BatchNormalization", ins, rn.name, epsilon=rn.attrs["eps"])


@OPS.register("dense")
def dense(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    w = rn.params["weight"]
    if len(rn.in_shapes[0]) == 1:
        ins = [xs[0], g.const(f"{rn.name}.weight", w)]
        if "bias" in rn.params:
            ins.append(g.const(f"{rn.name}.bias", rn.params["bias"]))
        return g.add("Gemm", ins, rn.name, transB=1)
    y = g.add(
        "MatMul", [xs[0], g.const(f"{rn.name}.kernel", dense_to_kernel(w))], f"{rn.name}/matmul"
    )
    if "bias" in rn.params:
        y = g.add("Add", [y, g.const(f"{rn.name}.bias", rn.params["bias"])], rn.name)
    return y


def _simple(op_type: str, **attrs: Any) -> Callable[..., Any]:
    return lambda g, xs, rn: g.add(op_type, [xs[0]], rn.name, **attrs)


OPS["relu"] = _simple("Relu")
OPS["sigmoid"] = _simple("Sigmoid")
OPS["tanh"] = _simple("Tanh")
OPS["dropout"] = _simple("Identity")
OPS["sqrt"] = _simple("Sqrt")
OPS["reciprocal"] = _simple("Reciprocal")
OPS["erf"] = _simple("Erf")
OPS["hard_swish"] = _simple("HardSwish")
OPS["flatten"] = _simple("Flatten", axis=1)
OPS["relu6"] = lambda g, xs, rn: g.add(
    "Clip", [xs[0], g.const("zero", 0.0), g.const("six", 6.0)], rn.name
)
OPS["silu"] = lambda g, xs, rn: g.add(
    "Mul", [xs[0], g.add("Sigmoid", [xs[0]], f"{rn.name}/sig")], rn.name
)
OPS["softmax"] = lambda g, xs, rn: g.add("Softmax", [xs[0]], rn.name, axis=rn.attrs["axis"])
OPS["transpose"] = lambda g, xs, rn: g.add("Transpose", [xs[0]], rn.name, perm=rn.attrs["perm"])
OPS["reshape"] = lambda g, xs, rn: g.add(
    "Reshape", [xs[0], g.const(f"{rn.name}.shape", [-1, *rn.attrs["shape"]], np.int64)], rn.name
)
OPS["global_avg_pool"] = lambda g, xs, rn: g.add(
    "ReduceMean", [xs[0]], rn.name, axes=[2, 3], keepdims=0
)
OPS["reduce_mean"] = lambda g, xs, rn: g.add(
    "ReduceMean", [xs[0]], rn.name, axes=rn.attrs["axes"], keepdims=int(rn.attrs["keepdims"])
)
OPS["concat"] = lambda g, xs, rn: g.add("Concat", list(xs), rn.name, axis=rn.attrs["axis"])
OPS["matmul"] = lambda g, xs, rn: g.add("MatMul", list(xs), rn.name)


@OPS.register("pad")
def pad(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    p = rn.attrs["pads"]
    pads = [0, *p[0::2], 0, *p[1::2]]  # ONNX: all begins (batch first), then all ends
    return g.add(
        "Pad",
        [
            xs[0],
            g.const(f"{rn.name}.pads", pads, np.int64),
            g.const(f"{rn.name}.value", rn.attrs["value"]),
        ],
        rn.name,
        mode="constant",
    )


@OPS.register("slice")
def slice_(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    sl = [(ax, *rn.attrs["slices"][ax - 1]) for ax in rn.attrs["axes"]]
    ins = [xs[0]] + [
        g.const(f"{rn.name}.{key}", [s[i] for s in sl], np.int64)
        for i, key in ((1, "starts"), (2, "ends"), (0, "axes"), (3, "steps"))
    ]
    return g.add("Slice", ins, rn.name)


def _binary(op_type: str) -> Callable[..., Any]:
    def emit(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
        other = xs[1] if len(xs) == 2 else g.const(f"{rn.name}.other", rn.params["other"])
        return g.add(op_type, [xs[0], other], rn.name)

    return emit


OPS["add"] = _binary("Add")
OPS["mul"] = _binary("Mul")
OPS["div"] = _binary("Div")


@OPS.register("gelu")
def gelu(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    x, n = xs[0], rn.name
    half = g.add("Mul", [x, g.const(f"{n}.half", 0.5)], f"{n}/half")
    if rn.attrs["approximate"] == "tanh":
        cube = g.add("Mul", [g.add("Mul", [x, x], f"{n}/sq"), x], f"{n}/cube")
        inner = g.add(
            "Add", [x, g.add("Mul", [cube, g.const(f"{n}.c", 0.044715)], f"{n}/c3")], f"{n}/inner"
        )
        t = g.add(
            "Tanh",
            [g.add("Mul", [inner, g.const(f"{n}.k", math.sqrt(2 / math.pi))], f"{n}/k")],
            f"{n}/tanh",
        )
    else:
        t = g.add(
            "Erf",
            [g.add("Mul", [x, g.const(f"{n}.rsqrt2", 1 / math.sqrt(2))], f"{n}/scaled")],
            f"{n}/erf",
        )
    return g.add("Mul", [half, g.add("Add", [t, g.const(f"{n}.one", 1.0)], f"{n}/onep")], n)


def _pad(g: OnnxGraph, rn: ResolvedNode, x: str, value: float) -> str:
    t, b, l, r = rn.attrs["pads"]  # noqa: E741
    if not any((t, b, l, r)):
        return x
    pads = g.const(f"{rn.name}.pads", [0, 0, t, l, 0, 0, b, r], np.int64)
    return g.add(
        "Pad", [x, pads, g.const(f"{rn.name}.pad_value", value)], f"{rn.name}/pad", mode="constant"
    )


@OPS.register("max_pool")
def max_pool(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    a = rn.attrs
    x = _pad(g, rn, xs[0], float(np.finfo(np.float32).min))
    return g.add("MaxPool", [x], rn.name, kernel_shape=a["kernel_size"], strides=a["stride"])


@OPS.register("avg_pool")
def avg_pool(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    a = rn.attrs
    x = _pad(g, rn, xs[0], 0.0)
    kh, kw = a["kernel_size"]
    div = avg_pool_divisor(rn.in_shapes[0][1:], a, rn.out_shape[1:])
    if np.all(div == kh * kw):
        return g.add(
            "AveragePool", [x], rn.name, kernel_shape=a["kernel_size"], strides=a["stride"]
        )
    y = g.add(
        "AveragePool", [x], f"{rn.name}/avg", kernel_shape=a["kernel_size"], strides=a["stride"]
    )
    return g.add("Mul", [y, g.const(f"{rn.name}.rescale", (kh * kw / div)[None, None])], rn.name)


@OPS.register("layer_norm")
def layer_norm(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    return g.add(
        "LayerNormalization",
        [
            xs[0],
            g.const(f"{rn.name}.weight", rn.params["weight"]),
            g.const(f"{rn.name}.bias", rn.params["bias"]),
        ],
        rn.name,
        axis=-1,
        epsilon=rn.attrs["eps"],
    )


@OPS.register("multi_head_attention")
def multi_head_attention(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    n, p = rn.name, rn.params
    t, d = rn.in_shapes[0]
    h = rn.attrs["num_heads"]
    qkv = g.add(
        "MatMul", [xs[0], g.const(f"{n}.in_kernel", dense_to_kernel(p["in_weight"]))], f"{n}/qkv_mm"
    )
    qkv = g.add("Add", [qkv, g.const(f"{n}.in_bias", p["in_bias"])], f"{n}/qkv")
    qkv = g.add(
        "Reshape", [qkv, g.const(f"{n}.qkv_shape", [-1, t, 3, h, d // h], np.int64)], f"{n}/qkv_r"
    )
    qkv = g.add("Transpose", [qkv], f"{n}/qkv_t", perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.add("Gather", [qkv, g.const(f"{n}.idx{i}", i, np.int64)], f"{n}/{c}", axis=0)
        for i, c in enumerate("qkv")
    )
    kt = g.add("Transpose", [k], f"{n}/kT", perm=[0, 1, 3, 2])
    s = g.add("MatMul", [q, kt], f"{n}/scores")
    s = g.add("Mul", [s, g.const(f"{n}.scale", 1 / math.sqrt(d // h))], f"{n}/scaled")
    att = g.add("Softmax", [s], f"{n}/softmax", axis=-1)
    y = g.add("MatMul", [att, v], f"{n}/attv")
    y = g.add("Transpose", [y], f"{n}/merge_t", perm=[0, 2, 1, 3])
    y = g.add("Reshape", [y, g.const(f"{n}.merge_shape", [-1, t, d], np.int64)], f"{n}/merge")
    y = g.add(
        "MatMul", [y, g.const(f"{n}.out_kernel", dense_to_kernel(p["out_weight"]))], f"{n}/out_mm"
    )
    return g.add("Add", [y, g.const(f"{n}.out_bias", p["out_bias"])], n)


@OPS.register("upsample")
def upsample(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    sh, sw = rn.attrs["scale_factor"]
    scales = g.const(f"{rn.name}.scales", [1.0, 1.0, sh, sw])
    return g.add(
        "Resize",
        [xs[0], "", scales],
        rn.name,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


@OPS.register("lstm")
def lstm(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    n, p, hs = rn.name, rn.params, rn.attrs["hidden_size"]
    x = g.add("Transpose", [xs[0]], f"{n}/time_major", perm=[1, 0, 2])
    w = g.const(f"{n}.W", gates_ifgo_to_iofc(p["weight_ih"])[None])
    r = g.const(f"{n}.R", gates_ifgo_to_iofc(p["weight_hh"])[None])
    b = g.const(
        f"{n}.B",
        np.concatenate([gates_ifgo_to_iofc(p["bias_ih"]), gates_ifgo_to_iofc(p["bias_hh"])])[None],
    )
    y, y_h = g.add("LSTM", [x, w, r, b], f"{n}/lstm", n_out=2, hidden_size=hs)
    axes0 = g.const(f"{n}.axes0", [0], np.int64)
    if rn.attrs["return_sequences"]:
        seq = g.add("Squeeze", [y, g.const(f"{n}.axes1", [1], np.int64)], f"{n}/seq")
        return g.add("Transpose", [seq], n, perm=[1, 0, 2])
    return g.add("Squeeze", [y_h, axes0], n)


@OPS.register("embedding")
def embedding(g: OnnxGraph, xs: list[str], rn: ResolvedNode) -> str:
    # ids in [0, V): Model.to_device checks them on the host
    return g.add("Gather", [g.const(f"{rn.name}.weight", rn.params["weight"]), xs[0]], rn.name)


def to_onnx(spec: ModelSpec, opset: int = OPSET) -> onnx.ModelProto:
    """The spec as a checked ONNX model with a symbolic batch dimension ``N``."""
    g = OnnxGraph()
    env: dict[str, str] = {}
    inputs = []
    for t in spec.inputs:
        env[t.name] = g.fresh(t.name)
        inputs.append(
            helper.make_tensor_value_info(
                env[t.name],
                TensorProto.INT64 if t.dtype == "int64" else TensorProto.FLOAT,
                ["N", *t.shape[1:]],
            )
        )
    OPS.run(spec.resolved(), env, g)
    shapes = spec.shapes()
    outputs = []
    for o in spec.outputs:
        name = env[o]
        if name in {i.name for i in inputs}:  # an output that is an input needs its own name
            name = g.add("Identity", [name], f"{o}_out")
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shapes[o]]))
    graph = helper.make_graph(g.nodes, spec.name, inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="dlbench",
    )
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model
