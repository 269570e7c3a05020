"""One handler per ONNX op: map a node onto ops of the spec op set.

A handler gets the converter, the node, a label for messages and the node's attributes, and
returns the values of the node's outputs (:class:`Act` or :class:`Const`). What a spec op cannot
express (an op along the batch axis, asymmetric pool padding, a non-integer resize...) is a
:class:`SpecError` naming the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dlbench.errors import SpecError
from dlbench.model.onnx_import.values import BATCH, Act, Const, const_per_sample
from dlbench.model.ops import same_pads

Handler = Callable[[Any, Any, str, dict[str, Any]], list[Any]]
HANDLERS: dict[str, Handler] = {}
#: A slice of the batch axis from 0 with an end at least this large keeps the whole batch
#: (exporters write INT64_MAX, INT32_MAX or 1e9 for "to the end").
_TO_END = 10**9


def handles(*ops: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for op in ops:
            HANDLERS[op] = fn
        return fn

    return deco


def _fail(label: str, op: str, message: str) -> SpecError:
    return SpecError(f"Node {label!r} ({op}): {message}")


def _nchw(cv: Any, n: Any, label: str) -> Act:
    x = cv.act(n.input[0], label)
    if x.b != 0 or x.rank != 4:
        raise _fail(
            label,
            n.op_type,
            f"expected a batch-first NCHW input (rank 4). Received shape {x.shape} "
            "(only 2-D convolution and pooling are supported)",
        )
    return x


# -- activations and pass-through -----------------------------------------------------------------


@handles("Identity", "Dropout")
def _identity(cv, n, label, attrs):
    if n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]:
        mode = cv.const(n.input[2], label, "training_mode")
        if mode is not None and bool(np.asarray(mode)):
            raise _fail(label, n.op_type, "training_mode=True is not an inference graph")
    return [cv.act(n.input[0], label)]


@handles("Cast")
def _cast(cv, n, label, attrs):
    if attrs.get("to") not in (1, 10, 11, 16):
        raise _fail(
            label, "Cast", f"only casts to float are supported. Received: to={attrs.get('to')}"
        )
    return [cv.act(n.input[0], label)]


_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
}


@handles(*_UNARY)
def _unary(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    return [cv.emit(_UNARY[n.op_type], [x], hint=label, b=x.b)]


@handles("Gelu")
def _gelu(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    return [
        cv.emit("gelu", [x], {"approximate": attrs.get("approximate", "none")}, hint=label, b=x.b)
    ]


@handles("Clip")
def _clip(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    lo = cv.const(n.input[1], label, "min") if len(n.input) > 1 else None
    hi = cv.const(n.input[2], label, "max") if len(n.input) > 2 else None
    lo = None if lo is None else float(np.asarray(lo).reshape(()))
    hi = None if hi is None or not np.isfinite(hi).all() else float(np.asarray(hi).reshape(()))
    if lo == 0.0 and hi == 6.0:
        return [cv.emit("relu6", [x], hint=label, b=x.b)]
    if lo == 0.0 and hi is None:
        return [cv.emit("relu", [x], hint=label, b=x.b)]
    raise _fail(
        label,
        "Clip",
        f"only Clip(0, 6) (relu6) and Clip(0) (relu) map to spec ops. Received: min={lo}, max={hi}",
    )


@handles("Max", "Min")
def _max_min(cv, n, label, attrs):
    """max(x, 0) is relu; min(relu(x), 6) makes that relu a relu6 (how jax2onnx writes relu6)."""
    vals = [cv.get(i, label) for i in n.input if i]
    acts = [v for v in vals if isinstance(v, Act)]
    consts = [v for v in vals if isinstance(v, Const)]
    if len(acts) == 1 and len(consts) == 1 and np.asarray(consts[0].value).size == 1:
        x, c = acts[0], float(np.asarray(consts[0].value).reshape(()))
        if n.op_type == "Max" and c == 0.0:
            return [cv.emit("relu", [x], hint=label, b=x.b)]
        prev = cv.node_by_name.get(x.name)
        if (
            n.op_type == "Min"
            and c == 6.0
            and prev is not None
            and prev.op == "relu"
            and cv.nodes[-1] is prev
            and cv.consumers[n.input[0] if isinstance(vals[0], Act) else n.input[1]] == 1
        ):
            prev.op = "relu6"
            return [x]
    raise _fail(
        label,
        n.op_type,
        "only Max(x, 0) (relu) and Min(relu(x), 6) (relu6) map to spec ops",
    )


@handles("Softmax")
def _softmax(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = x.spec_axis(attrs.get("axis", -1), label)
    return [cv.emit("softmax", [x], {"axis": axis}, hint=label, b=x.b)]


# -- layers with weights --------------------------------------------------------------------------


def _conv_pads(label, op, attrs, kernel, stride, dilation, hw) -> list[int]:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(p) != 4:
            raise _fail(label, op, f"expected 4 pads for 2-D. Received: {p}")
        return [p[0], p[2], p[1], p[3]]  # ONNX (t, l, b, r) -> spec (t, b, l, r)
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(hw, kernel, stride, dilation):
            a, b = same_pads(size, k, s, d)
            out += [a, b] if auto == "SAME_UPPER" else [b, a]
        return out
    raise _fail(label, op, f"unknown auto_pad {auto!r}")


@handles("Conv")
def _conv(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    w = cv.const(n.input[1], label, "weight")
    b = cv.const(n.input[2], label, "bias") if len(n.input) > 2 else None
    if w.ndim != 4:
        raise _fail(label, "Conv", f"only 2-D convolution is supported. Received weight {w.shape}")
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    if kernel != list(w.shape[2:]):
        raise _fail(label, "Conv", f"kernel_shape {kernel} does not match the weight {w.shape}")
    stride = list(attrs.get("strides", [1, 1]))
    dilation = list(attrs.get("dilations", [1, 1]))
    pads = _conv_pads(label, "Conv", attrs, kernel, stride, dilation, x.s[1:])
    params = {"weight": _weight_name(cv, n.input[1], w, f"{label}.weight")}
    if b is not None:
        params["bias"] = _weight_name(cv, n.input[2], b, f"{label}.bias")
    a = {
        "stride": stride,
        "padding": pads,
        "dilation": dilation,
        "groups": int(attrs.get("group", 1)),
    }
    return [cv.emit("conv2d", [x], a, params, hint=label)]


def _weight_name(cv, onnx_name: str, array: np.ndarray, hint: str) -> str:
    """A spec weight named after its initializer when used unchanged, else after the node."""
    return cv.param(onnx_name if onnx_name in cv.initializer_names else hint, array)


@handles("BatchNormalization")
def _bn(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if x.b != 0:
        raise _fail(label, n.op_type, "expected the batch axis first")
    if attrs.get("training_mode", 0):
        raise _fail(label, n.op_type, "training_mode=1 is not an inference graph")
    roles = ("weight", "bias", "mean", "var")
    params = {
        r: _weight_name(cv, name, cv.const(name, label, r), f"{label}.{r}")
        for r, name in zip(roles, n.input[1:5])
    }
    return [
        cv.emit("batch_norm", [x], {"eps": float(attrs.get("epsilon", 1e-5))}, params, hint=label)
    ]


@handles("Gemm")
def _gemm(cv, n, label, attrs):
    a = cv.act(n.input[0], label, "A")
    bm = cv.const(n.input[1], label, "B")
    if a.b != 0 or a.rank != 2 or attrs.get("transA", 0):
        raise _fail(
            label, "Gemm", f"expected A of shape (batch, K) without transA. Received {a.shape}"
        )
    trans_b = attrs.get("transB", 0)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    w = bm if trans_b else bm.T
    plain = trans_b and alpha == 1.0
    params = {"weight": _weight_name(cv, n.input[1], w, f"{label}.weight") if plain else w * alpha}
    if len(n.input) > 2 and n.input[2]:
        c = np.asarray(cv.const(n.input[2], label, "C"), np.float32)
        out = w.shape[0]
        if c.size not in (1, out) or (c.ndim == 2 and c.shape[0] != 1):
            raise _fail(label, "Gemm", f"expected C to broadcast to ({out},). Received {c.shape}")
        bias = np.broadcast_to(c.reshape(-1), (out,)) * beta
        params["bias"] = (
            _weight_name(cv, n.input[2], bias, f"{label}.bias")
            if beta == 1.0 and c.shape == (out,)
            else bias
        )
    return [cv.emit("dense", [a], {}, params, hint=label)]


@handles("MatMul")
def _matmul(cv, n, label, attrs):
    a, b = (cv.get(x, label) for x in n.input[:2])
    if isinstance(a, Act) and isinstance(b, Const):
        w = np.asarray(b.value)
        if w.ndim != 2 or a.rank < 2 or a.b == a.rank - 1:
            raise _fail(
                label,
                "MatMul",
                f"expected a 2-D constant B and an activation whose last axis is not the batch axis. Received {a.shape} @ {w.shape}",
            )
        return [cv.emit("dense", [a], {}, {"weight": w.T}, hint=label, b=a.b)]
    if isinstance(a, Act) and isinstance(b, Act):
        if a.b != b.b or a.rank != b.rank or a.b >= a.rank - 2:
            raise _fail(
                label,
                "MatMul",
                f"expected two activations of equal rank with the batch axis among the leading axes. Received {a.shape} @ {b.shape}",
            )
        return [cv.emit("matmul", [a, b], hint=label, b=a.b)]
    raise _fail(label, "MatMul", "a constant first operand (C @ x) is not supported")


@handles("LayerNormalization")
def _layer_norm(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = attrs.get("axis", -1) % x.rank
    if axis != x.rank - 1 or x.b == x.rank - 1:
        raise _fail(
            label,
            n.op_type,
            f"only normalisation over the last (non-batch) axis is supported. Received axis={attrs.get('axis', -1)} for shape {x.shape}",
        )
    scale = cv.const(n.input[1], label, "scale")
    d = x.s[-1]
    bias = (
        cv.const(n.input[2], label, "bias")
        if len(n.input) > 2 and n.input[2]
        else np.zeros(d, np.float32)
    )
    params = {
        "weight": np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (d,)),
        "bias": np.broadcast_to(np.asarray(bias, np.float32).reshape(-1), (d,)),
    }
    if np.asarray(scale).shape == (d,):
        params["weight"] = _weight_name(cv, n.input[1], scale, f"{label}.weight")
    if len(n.input) > 2 and n.input[2] and np.asarray(bias).shape == (d,):
        params["bias"] = _weight_name(cv, n.input[2], bias, f"{label}.bias")
    return [
        cv.emit(
            "layer_norm", [x], {"eps": float(attrs.get("epsilon", 1e-5))}, params, hint=label, b=x.b
        )
    ]


@handles("LSTM")
def _lstm(cv, n, label, attrs):
    x = cv.act(n.input[0], label, "X")
    layout = int(attrs.get("layout", 0))
    if x.rank != 3 or x.b != (1 if layout == 0 else 0):
        raise _fail(
            label,
            "LSTM",
            f"expected X as {'(seq, batch, in)' if layout == 0 else '(batch, seq, in)'}. Received {x.shape}",
        )
    if attrs.get("direction", "forward") != "forward":
        raise _fail(
            label,
            "LSTM",
            f"only direction='forward' is supported. Received {attrs.get('direction')!r}",
        )
    for key in ("activations", "clip", "activation_alpha", "activation_beta"):
        if key in attrs:
            raise _fail(label, "LSTM", f"attribute {key!r} is not supported")
    if attrs.get("input_forget", 0):
        raise _fail(label, "LSTM", "input_forget=1 is not supported")
    ins = list(n.input) + [""] * (8 - len(n.input))
    if ins[4] or ins[7]:
        raise _fail(label, "LSTM", "sequence_lens and peepholes (P) are not supported")
    for k, what in ((5, "initial_h"), (6, "initial_c")):
        if ins[k]:
            v = cv.const(ins[k], label, what)
            if np.any(np.asarray(v) != 0):
                raise _fail(label, "LSTM", f"only a zero {what} is supported")
    h = int(attrs["hidden_size"])
    w, r = cv.const(ins[1], label, "W"), cv.const(ins[2], label, "R")
    bias = cv.const(ins[3], label, "B") if ins[3] else np.zeros((1, 8 * h), np.float32)

    def gates(m: np.ndarray) -> np.ndarray:  # ONNX i, o, f, c -> PyTorch i, f, g(c), o
        i, o, f, c = np.split(np.asarray(m)[0], 4, axis=0)
        return np.concatenate([i, f, c, o], axis=0)

    params = {
        "weight_ih": cv.param(f"{label}.weight_ih", gates(w)),
        "weight_hh": cv.param(f"{label}.weight_hh", gates(r)),
        "bias_ih": cv.param(f"{label}.bias_ih", gates(bias[:, : 4 * h])),
        "bias_hh": cv.param(f"{label}.bias_hh", gates(bias[:, 4 * h :])),
    }
    outs: list[Any] = []
    names = list(n.output) + [""] * 3
    if names[0] and cv.consumers[names[0]]:
        y = cv.emit("lstm", [x], {"hidden_size": h, "return_sequences": True}, params, hint=label)
        seq = y.s[0]
        outs.append(cv.reshape(y, (seq, 1, h), 2 if layout == 0 else 0, f"{label}.Y"))
    else:
        outs.append(None)
    if names[1] and cv.consumers[names[1]]:
        yh = cv.emit(
            "lstm", [x], {"hidden_size": h, "return_sequences": False}, params, hint=f"{label}.last"
        )
        outs.append(cv.reshape(yh, (1, h), 1 if layout == 0 else 0, f"{label}.Y_h"))
    return outs


# -- element-wise arithmetic ----------------------------------------------------------------------


def _scalar_param(value: float) -> np.ndarray:
    return np.array([value], np.float32)


@handles("Add", "Sub", "Mul", "Div")
def _binary(cv, n, label, attrs):
    op = n.op_type
    a, b = (cv.get(x, label) for x in n.input[:2])
    if isinstance(a, Act) and isinstance(b, Act):
        if a.rank != b.rank or a.b != b.b:
            raise _fail(
                label,
                op,
                f"expected activations of equal rank and batch axis. Received {a.shape} and {b.shape}",
            )
        if op in ("Add", "Mul"):
            return [cv.emit(op.lower(), [a, b], hint=label, b=a.b)]
        if op == "Sub":
            neg = cv.emit(
                "mul", [b], {}, {"other": _scalar_param(-1.0)}, hint=f"{label}.neg", b=b.b
            )
            return [cv.emit("add", [a, neg], hint=label, b=a.b)]
        raise _fail(label, op, "dividing by an activation needs a reciprocal op the op set lacks")
    x, c, swapped = (a, b, False) if isinstance(a, Act) else (b, a, True)
    cval = const_per_sample(c.value, x, label)
    if op == "Add" and not swapped and _fold_bias(cv, n, x, cval):
        return [x]
    if op == "Add":
        return [cv.emit("add", [x], {}, {"other": cval}, hint=label, b=x.b)]
    if op == "Mul":
        return [cv.emit("mul", [x], {}, {"other": cval}, hint=label, b=x.b)]
    if op == "Sub" and not swapped:
        return [cv.emit("add", [x], {}, {"other": -cval}, hint=label, b=x.b)]
    if op == "Sub":
        neg = cv.emit("mul", [x], {}, {"other": _scalar_param(-1.0)}, hint=f"{label}.neg", b=x.b)
        return [cv.emit("add", [neg], {}, {"other": cval}, hint=label, b=x.b)]
    if not swapped:
        return [
            cv.emit("mul", [x], {}, {"other": (1.0 / cval).astype(np.float32)}, hint=label, b=x.b)
        ]
    raise _fail(
        label, op, "dividing a constant by an activation needs a reciprocal op the op set lacks"
    )


def _fold_bias(cv, n, x: Act, c: np.ndarray) -> bool:
    """MatMul + Add(bias): give the dense node its bias instead of adding an `add` node."""
    node = cv.node_by_name.get(x.name)
    if node is None or node.op != "dense" or "bias" in node.params or cv.nodes[-1] is not node:
        return False
    out = cv.params[node.params["weight"]].shape[0]
    if c.shape != (out,) or cv.consumers[n.input[0]] != 1 or n.input[0] in cv.outputs:
        return False
    node.params["bias"] = _weight_name(cv, n.input[1], c, f"{node.name}.bias")
    return True


# -- pooling and resizing -------------------------------------------------------------------------


@handles("MaxPool", "AveragePool")
def _pool(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    op = n.op_type
    k = list(attrs["kernel_shape"])
    s = list(attrs.get("strides", [1, 1]))
    if len(k) != 2:
        raise _fail(label, op, f"only 2-D pooling is supported. Received kernel_shape={k}")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise _fail(label, op, "dilated pooling is not supported")
    if op == "MaxPool" and len(n.output) > 1 and n.output[1]:
        raise _fail(label, op, "the Indices output is not supported")
    t, b, left, right = _conv_pads(label, op, attrs, k, s, [1, 1], x.s[1:])
    if t != b or left != right:
        raise _fail(
            label,
            op,
            f"only symmetric padding is supported. Received (top, bottom, left, right)={[t, b, left, right]}",
        )
    a = {
        "kernel_size": k,
        "stride": s,
        "padding": [t, left],
        "ceil_mode": bool(attrs.get("ceil_mode", 0)),
    }
    if op == "AveragePool":
        a["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        return [cv.emit("avg_pool", [x], a, hint=label)]
    return [cv.emit("max_pool", [x], a, hint=label)]


@handles("GlobalAveragePool")
def _gap(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    y = cv.emit("global_avg_pool", [x], hint=label)
    return [cv.reshape(y, (x.s[0], 1, 1), 0, f"{label}.keepdims")]


@handles("ReduceMean")
def _reduce_mean(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if cv.opset >= 18:
        axes = cv.const(n.input[1], label, "axes") if len(n.input) > 1 and n.input[1] else None
    else:
        axes = attrs.get("axes")
    if axes is None or len(np.asarray(axes).reshape(-1)) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.rank))
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    keep = bool(attrs.get("keepdims", 1))
    spec_axes = [x.spec_axis(a, label, "axes") for a in axes]
    onnx_axes = {a % x.rank for a in axes}
    nb = x.b if keep else x.b - sum(a < x.b for a in onnx_axes)
    return [cv.emit("reduce_mean", [x], {"axes": spec_axes, "keepdims": keep}, hint=label, b=nb)]


@handles("Resize")
def _resize(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    if attrs.get("mode", "nearest") != "nearest":
        raise _fail(
            label, "Resize", f"only mode='nearest' is supported. Received {attrs.get('mode')!r}"
        )
    ins = list(n.input) + [""] * 4
    scales = cv.const(ins[2], label, "scales") if ins[2] else None
    sizes = cv.const(ins[3], label, "sizes") if ins[3] else None
    axes = list(attrs.get("axes", range(4)))
    axes = [a % 4 for a in axes]
    full = [1.0, 1.0, 1.0, 1.0]
    if scales is not None and np.asarray(scales).size:
        for a, v in zip(axes, np.asarray(scales, np.float64).reshape(-1)):
            full[a] = float(v)
    elif sizes is not None and np.asarray(sizes).size:
        if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise _fail(
                label, "Resize", "keep_aspect_ratio_policy other than 'stretch' is not supported"
            )
        dims = (1, *x.s)
        for a, v in zip(axes, np.asarray(sizes).reshape(-1)):
            full[a] = 1.0 if a == 0 or v == BATCH else float(v) / dims[a]
    else:
        raise _fail(label, "Resize", "expected constant scales or sizes")
    if full[0] != 1.0 or full[1] != 1.0 or any(f < 1 or f != int(f) for f in full[2:]):
        raise _fail(
            label,
            "Resize",
            f"only integer up-scaling of H and W is supported. Received scales {full}",
        )
    ct = attrs.get("coordinate_transformation_mode", "half_pixel")
    nm = attrs.get("nearest_mode", "round_prefer_floor")
    exact = (ct == "asymmetric" and nm == "floor") or (
        ct in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")
        and nm in ("round_prefer_floor", "round_prefer_ceil")
    )
    if not exact and full[2:] != [1.0, 1.0]:
        raise _fail(
            label,
            "Resize",
            f"coordinate_transformation_mode={ct!r} with nearest_mode={nm!r} is not a plain repeat",
        )
    return [
        cv.emit(
            "upsample",
            [x],
            {"scale_factor": [int(full[2]), int(full[3])], "mode": "nearest"},
            hint=label,
        )
    ]


@handles("Pad")
def _pad(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if attrs.get("mode", "constant") != "constant":
        raise _fail(
            label, "Pad", f"only mode='constant' is supported. Received {attrs.get('mode')!r}"
        )
    pads = [int(p) for p in np.asarray(cv.const(n.input[1], label, "pads")).reshape(-1)]
    value = 0.0
    if len(n.input) > 2 and n.input[2]:
        value = float(np.asarray(cv.const(n.input[2], label, "constant_value")).reshape(()))
    axes = list(range(x.rank))
    if len(n.input) > 3 and n.input[3]:
        axes = [
            int(a) % x.rank for a in np.asarray(cv.const(n.input[3], label, "axes")).reshape(-1)
        ]
    if len(pads) != 2 * len(axes):
        raise _fail(label, "Pad", f"expected {2 * len(axes)} pads. Received {pads}")
    per = {a: (pads[i], pads[i + len(axes)]) for i, a in enumerate(axes)}
    if per.get(x.b, (0, 0)) != (0, 0):
        raise _fail(label, "Pad", "padding the batch axis is not supported")
    spec_pads = []
    for a in range(x.rank):
        if a != x.b:
            spec_pads += list(per.get(a, (0, 0)))
    if not any(spec_pads):
        return [x]
    return [cv.emit("pad", [x], {"pads": spec_pads, "value": value}, hint=label, b=x.b)]


# -- shape plumbing -------------------------------------------------------------------------------


def _batch_position(cv, label: str, x: Act, target: list[int]) -> tuple[int, list[int]]:
    """(batch axis of the reshaped tensor, the target with that axis removed and -1 resolved)."""
    numel = math.prod(x.s)
    marks = [i for i, d in enumerate(target) if d == BATCH]
    rest = [d for d in target if d != BATCH]
    if any(d < -1 for d in rest) or rest.count(-1) > 1:
        raise _fail(
            label,
            "Reshape",
            f"the target shape depends on the batch size through arithmetic (or is malformed): {target}",
        )
    if len(marks) > 1:
        raise _fail(label, "Reshape", f"the batch size appears twice in the target shape {target}")
    if not marks:
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            if known == numel:
                marks = [target.index(-1)]
            else:
                raise _fail(
                    label,
                    "Reshape",
                    f"the target {target} merges the batch axis with other axes of {x.shape}; dlbench specs keep the batch axis separate",
                )
        elif cv.fixed_batch is not None:
            before = math.prod(x.s[: x.b])
            for k, d in enumerate(target):
                if d == cv.fixed_batch and math.prod(target[:k]) == before:
                    marks = [k]
                    break
        if not marks:
            raise _fail(
                label,
                "Reshape",
                f"cannot tell the batch axis in the target shape {target} of {x.shape}",
            )
    k = marks[0]
    dims = [d for i, d in enumerate(target) if i != k]
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or numel % known:
            raise _fail(label, "Reshape", f"cannot reshape {x.shape} into {target}")
        dims[dims.index(-1)] = numel // known
    if math.prod(dims) != numel:
        raise _fail(label, "Reshape", f"cannot reshape {x.shape} into {target}")
    if math.prod(dims[:k]) != math.prod(x.s[: x.b]):
        raise _fail(
            label, "Reshape", f"the target {target} moves data across the batch axis of {x.shape}"
        )
    return k, dims


@handles("Reshape")
def _reshape(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    target = [int(d) for d in np.asarray(cv.const(n.input[1], label, "shape")).reshape(-1)]
    if not attrs.get("allowzero", 0):
        onnx_shape = x.shape
        target = [
            (BATCH if onnx_shape[i] is None else onnx_shape[i]) if d == 0 and i < x.rank else d
            for i, d in enumerate(target)
        ]
    k, dims = _batch_position(cv, label, x, target)
    return [cv.reshape(x, tuple(dims), k, label)]


@handles("Flatten")
def _flatten(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = attrs.get("axis", 1) % x.rank if attrs.get("axis", 1) != x.rank else x.rank
    if x.b != 0 or axis != 1:
        raise _fail(
            label,
            "Flatten",
            f"only Flatten(axis=1) of a batch-first tensor is supported. Received axis={attrs.get('axis', 1)}, shape {x.shape}",
        )
    if x.rank == 2:
        return [x]
    return [cv.emit("flatten", [x], hint=label)]


@handles("Transpose")
def _transpose(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    perm = list(attrs.get("perm", reversed(range(x.rank))))
    if sorted(perm) != list(range(x.rank)):
        raise _fail(label, "Transpose", f"perm {perm} is not a permutation of {x.rank} axes")
    nb = perm.index(x.b)

    def s_index(t: int) -> int:
        return 0 if t == x.b else (t + 1 if t < x.b else t)

    order = [nb] + [i for i in range(x.rank) if i != nb]
    r = [s_index(perm[i]) for i in order]
    if r == list(range(x.rank)):
        return [Act(x.name, x.s, nb)]
    return [cv.emit("transpose", [x], {"perm": r}, hint=label, b=nb)]


def _axes_input(cv, n, label, attrs) -> list[int] | None:
    if len(n.input) > 1 and n.input[1]:
        return [int(a) for a in np.asarray(cv.const(n.input[1], label, "axes")).reshape(-1)]
    return list(attrs["axes"]) if "axes" in attrs else None


@handles("Squeeze")
def _squeeze(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    shape = list(x.shape)
    axes = _axes_input(cv, n, label, attrs)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = sorted({a % x.rank for a in axes})
    if x.b in axes:
        raise _fail(label, "Squeeze", "squeezing the batch axis is not supported")
    if any(shape[a] != 1 for a in axes):
        raise _fail(label, "Squeeze", f"axes {axes} of {x.shape} are not all of size 1")
    keep = [d for i, d in enumerate(shape) if i not in axes]
    nb = keep.index(None)
    return [cv.reshape(x, tuple(d for d in keep if d is not None), nb, label)]


@handles("Unsqueeze")
def _unsqueeze(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axes = _axes_input(cv, n, label, attrs) or []
    r = x.rank + len(axes)
    axes = sorted({a % r for a in axes})
    shape, src = [], iter(x.shape)
    for i in range(r):
        shape.append(1 if i in axes else next(src))
    nb = shape.index(None)
    return [cv.reshape(x, tuple(d for d in shape if d is not None), nb, label)]


@handles("Concat")
def _concat(cv, n, label, attrs):
    xs = [cv.act(i, label) for i in n.input if i]
    if any(v.rank != xs[0].rank or v.b != xs[0].b for v in xs):
        raise _fail(
            label,
            "Concat",
            f"expected inputs of equal rank and batch axis. Received {[v.shape for v in xs]}",
        )
    axis = xs[0].spec_axis(int(attrs["axis"]), label)
    if len(xs) == 1:
        return [xs[0]]
    return [cv.emit("concat", xs, {"axis": axis}, hint=label, b=xs[0].b)]


def _slice_axis(
    cv, x: Act, label: str, axis: int, start: int, end: int, step: int, hint: str
) -> Act:
    a = x.spec_axis(axis, label)
    return cv.emit(
        "slice",
        [x],
        {"axes": [a], "starts": [start], "ends": [end], "steps": [step]},
        hint=hint,
        b=x.b,
    )


@handles("Slice")
def _slice(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    ins = list(n.input) + [""] * 5
    vec = lambda i: [int(v) for v in np.asarray(cv.const(ins[i], label)).reshape(-1)]  # noqa: E731
    starts, ends = vec(1), vec(2)
    axes = vec(3) if ins[3] else list(range(len(starts)))
    steps = vec(4) if ins[4] else [1] * len(starts)
    shape = x.shape
    sa, ss, se, st, full = [], [], [], [], True
    for a, b0, e0, s in zip(axes, starts, ends, steps):
        a %= x.rank
        if a == x.b:
            if b0 == 0 and (e0 >= _TO_END or e0 == BATCH) and s == 1:
                continue
            raise _fail(label, "Slice", "slicing the batch axis is not supported")
        if s < 1:
            raise _fail(
                label, "Slice", f"only positive steps are supported. Received steps={steps}"
            )
        size = shape[a]
        b1, e1, s1 = slice(b0, min(max(e0, -size - 1), size), s).indices(size)
        full = full and (b1, e1, s1) == (0, size, 1)
        sa.append(x.spec_axis(a, label))
        ss.append(b1)
        se.append(e1)
        st.append(s1)
    if not sa or full:
        return [x]
    return [
        cv.emit(
            "slice", [x], {"axes": sa, "starts": ss, "ends": se, "steps": st}, hint=label, b=x.b
        )
    ]


@handles("Split")
def _split(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    axis = int(attrs.get("axis", 0)) % x.rank
    size = x.shape[axis]
    if size is None:
        raise _fail(label, "Split", "splitting the batch axis is not supported")
    sizes = None
    if len(n.input) > 1 and n.input[1]:
        sizes = [int(v) for v in np.asarray(cv.const(n.input[1], label, "split")).reshape(-1)]
    elif "split" in attrs:
        sizes = [int(v) for v in attrs["split"]]
    if sizes is None:
        parts = int(attrs.get("num_outputs", len(n.output)))
        chunk = -(-size // parts)
        sizes = [min(chunk, size - i * chunk) for i in range(parts)]
    if sum(sizes) != size or len(sizes) != len(n.output):
        raise _fail(label, "Split", f"split sizes {sizes} do not cover axis {axis} of size {size}")
    outs, start = [], 0
    for k, s in enumerate(sizes):
        outs.append(_slice_axis(cv, x, label, axis, start, start + s, 1, f"{label}.{k}"))
        start += s
    return outs


@handles("Gather")
def _gather(cv, n, label, attrs):
    x = cv.act(n.input[0], label, "data")
    idx = np.asarray(cv.const(n.input[1], label, "indices"))
    axis = int(attrs.get("axis", 0)) % x.rank
    size = x.shape[axis]
    if size is None:
        raise _fail(label, "Gather", "gathering along the batch axis is not supported")
    flat = [int(i) % size for i in idx.reshape(-1)]
    if idx.ndim == 0:
        y = _slice_axis(cv, x, label, axis, flat[0], flat[0] + 1, 1, f"{label}.slice")
        shape = [d for i, d in enumerate(y.shape) if i != axis]
        nb = shape.index(None)
        return [cv.reshape(y, tuple(d for d in shape if d is not None), nb, label)]
    if (
        idx.ndim == 1
        and len(flat) > 1
        and all(flat[i + 1] - flat[i] == flat[1] - flat[0] > 0 for i in range(len(flat) - 1))
    ):
        step = flat[1] - flat[0]
        return [_slice_axis(cv, x, label, axis, flat[0], flat[-1] + 1, step, label)]
    if idx.ndim == 1 and len(flat) == 1:
        return [_slice_axis(cv, x, label, axis, flat[0], flat[0] + 1, 1, label)]
    raise _fail(
        label,
        "Gather",
        f"only a scalar index or an evenly spaced list of indices is supported. Received indices of shape {idx.shape}",
    )
