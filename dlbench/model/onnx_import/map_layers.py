"""Handlers of activations, layers with weights (conv, batch norm, dense, layer norm, LSTM) and
element-wise arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlbench.model.onnx_import.handlers import (
    _conv_pads,
    _fail,
    _nchw,
    _weight_name,
    handles,
)
from dlbench.model.onnx_import.values import Act, Const, const_per_sample

# -- activations and pass-through -----------------------------------------------------------------


@handles("Identity", "Dropout")
def _identity(cv, n, label, attrs):
    if n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]:
        mode = cv.const(n.input[2], label, "training_mode")
        if mode is not None and bool(np.asarray(mode)):
            raise _fail(label, n.op_type, "training_mode=True is not an inference graph")
    return [cv.act(n.input[0], label, merged_ok=True)]


@handles("Cast")
def _cast(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    if x.name in cv.integer:
        # token ids stay ids: a cast between integer types changes nothing dlbench computes
        if attrs.get("to") in (6, 7):
            return [x]
        raise _fail(
            label,
            "Cast",
            f"a cast of integer token ids to element type {attrs.get('to')} is not supported "
            "(ids are only read by a table lookup, Gather on a constant table)",
        )
    if attrs.get("to") not in (1, 10, 11, 16):
        raise _fail(
            label, "Cast", f"only casts to float are supported. Received: to={attrs.get('to')}"
        )
    return [cv.act(n.input[0], label, merged_ok=True)]


_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
    "Erf": "erf",
}


@handles(*_UNARY)
def _unary(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    return [cv.emit(_UNARY[n.op_type], [x], hint=label, like=x)]


@handles("Gelu")
def _gelu(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    return [
        cv.emit("gelu", [x], {"approximate": attrs.get("approximate", "none")}, hint=label, like=x)
    ]


@handles("Clip")
def _clip(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    lo = cv.const(n.input[1], label, "min") if len(n.input) > 1 else None
    hi = cv.const(n.input[2], label, "max") if len(n.input) > 2 else None
    lo = None if lo is None else float(np.asarray(lo).reshape(()))
    hi = None if hi is None or not np.isfinite(hi).all() else float(np.asarray(hi).reshape(()))
    if lo == 0.0 and hi == 6.0:
        return [cv.emit("relu6", [x], hint=label, like=x)]
    if lo == 0.0 and hi is None:
        return [cv.emit("relu", [x], hint=label, like=x)]
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
            return [cv.emit("relu", [x], hint=label, like=x)]
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
    x = cv.act(n.input[0], label, merged_ok=True)
    axis = x.spec_axis(attrs.get("axis", -1), label)
    return [cv.emit("softmax", [x], {"axis": axis}, hint=label, like=x)]


# -- layers with weights --------------------------------------------------------------------------


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
    a = cv.act(n.input[0], label, "A", merged_ok=True)
    bm = cv.const(n.input[1], label, "B")
    if a.group != 0 or a.rank != 2 or attrs.get("transA", 0):
        raise _fail(
            label, "Gemm", f"expected A of shape (batch, K) without transA. Received {a.shape}"
        )
    trans_b = attrs.get("transB", 0)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    w = bm if trans_b else bm.T
    plain = trans_b and alpha == 1.0
    tag = "" if plain else f"gemm{trans_b}:{alpha}"
    params = {"weight": _weight_name(cv, n.input[1], w * alpha, f"{label}.weight", tag)}
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
    return [cv.emit("dense", [a], {}, params, hint=label, like=a)]


@handles("MatMul")
def _matmul(cv, n, label, attrs):
    a, b = (cv.get(x, label) for x in n.input[:2])
    if isinstance(a, Act) and isinstance(b, Const):
        w = np.asarray(b.value)
        if w.ndim != 2 or a.rank < 2 or a.group == a.rank - 1:
            raise _fail(
                label,
                "MatMul",
                f"expected a 2-D constant B and an activation whose last axis is not the batch axis. Received {a.shape} @ {w.shape}",
            )
        weight = _weight_name(cv, n.input[1], w.T, f"{label}.weight", "T")
        return [cv.emit("dense", [a], {}, {"weight": weight}, hint=label, like=a)]
    if isinstance(a, Act) and isinstance(b, Act):
        if (a.b, a.p, a.f, a.rank) != (b.b, b.p, b.f, b.rank) or a.group >= a.rank - 2:
            raise _fail(
                label,
                "MatMul",
                f"expected two activations of equal rank with the batch axis among the leading axes. Received {a.shape} @ {b.shape}",
            )
        return [cv.emit("matmul", [a, b], hint=label, like=a)]
    raise _fail(label, "MatMul", "a constant first operand (C @ x) is not supported")


@handles("LayerNormalization")
def _layer_norm(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    axis = attrs.get("axis", -1) % x.rank
    if axis != x.rank - 1 or x.group == x.rank - 1:
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
            "layer_norm",
            [x],
            {"eps": float(attrs.get("epsilon", 1e-5))},
            params,
            hint=label,
            like=x,
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
        if (a.b, a.p, a.f, a.rank) != (b.b, b.p, b.f, b.rank):
            raise _fail(
                label,
                op,
                f"expected activations of equal rank and batch axis. Received {a.shape} and {b.shape}",
            )
        if op in ("Add", "Mul"):
            return [cv.emit(op.lower(), [a, b], hint=label, like=a)]
        if op == "Sub":
            neg = cv.emit(
                "mul", [b], {}, {"other": _scalar_param(-1.0)}, hint=f"{label}.neg", like=b
            )
            return [cv.emit("add", [a, neg], hint=label, like=a)]
        return [cv.emit("div", [a, b], hint=label, like=a)]
    x, c, swapped = (a, b, False) if isinstance(a, Act) else (b, a, True)
    cval = const_per_sample(c.value, x, label, cv.fixed_batch)
    cname = n.input[0] if swapped else n.input[1]
    frame = f"{x.b},{x.p},{x.f},{x.rank}"

    def other(arr: np.ndarray, kind: str) -> dict[str, str]:
        """One spec weight per (constant, transform, frame), shared by every node using it."""
        return {"other": _weight_name(cv, cname, arr, f"{label}.other", f"{kind}@{frame}")}

    if op == "Add" and not swapped and _fold_bias(cv, n, x, cval):
        return [x]
    if op == "Add":
        return [cv.emit("add", [x], {}, other(cval, "add"), hint=label, like=x)]
    if op == "Mul":
        return [cv.emit("mul", [x], {}, other(cval, "mul"), hint=label, like=x)]
    if op == "Sub" and not swapped:
        return [cv.emit("add", [x], {}, other(-cval, "neg"), hint=label, like=x)]
    if op == "Sub":
        neg = cv.emit("mul", [x], {}, {"other": _scalar_param(-1.0)}, hint=f"{label}.neg", like=x)
        return [cv.emit("add", [neg], {}, other(cval, "add"), hint=label, like=x)]
    if not swapped:
        return [cv.emit("div", [x], {}, other(cval, "div"), hint=label, like=x)]
    r = cv.emit(
        "reciprocal", [x], hint=f"{label}.reciprocal" if np.any(cval != 1) else label, like=x
    )
    if np.all(cval == 1):
        return [r]
    return [cv.emit("mul", [r], {}, other(cval, "mul"), hint=label, like=x)]


@handles("Neg")
def _neg(cv, n, label, attrs):
    x = cv.act(n.input[0], label, merged_ok=True)
    return [cv.emit("mul", [x], {}, {"other": _scalar_param(-1.0)}, hint=label, like=x)]


@handles("Pow")
def _pow(cv, n, label, attrs):
    """x ** e for a constant e in {-1, -0.5, 0.5, 1, 2, 3}: products, sqrt and reciprocal."""
    x = cv.act(n.input[0], label, merged_ok=True)
    e = np.asarray(cv.const(n.input[1], label, "exponent"))
    if e.size != 1 or float(e.reshape(())) not in (-1.0, -0.5, 0.5, 1.0, 2.0, 3.0):
        raise _fail(
            label,
            "Pow",
            f"expected a constant exponent in (-1, -0.5, 0.5, 1, 2, 3). Received {e.tolist()}",
        )
    e = float(e.reshape(()))
    if e == 1.0:
        return [x]
    if e in (0.5, -0.5):
        y = cv.emit("sqrt", [x], hint=label if e > 0 else f"{label}.sqrt", like=x)
        return [y if e > 0 else cv.emit("reciprocal", [y], hint=label, like=x)]
    if e == -1.0:
        return [cv.emit("reciprocal", [x], hint=label, like=x)]
    sq = cv.emit("mul", [x, x], hint=label if e == 2 else f"{label}.square", like=x)
    return [sq if e == 2 else cv.emit("mul", [sq, x], hint=label, like=x)]


def _fold_bias(cv, n, x: Act, c: np.ndarray) -> bool:
    """MatMul + Add(bias): give the dense node its bias instead of adding an `add` node."""
    node = cv.node_by_name.get(x.name)
    if node is None or node.op != "dense" or "bias" in node.params or cv.nodes[-1] is not node:
        return False
    out = cv.params[node.params["weight"]].shape[0]
    if c.shape != (out,) or cv.consumers[n.input[0]] != 1 or n.input[0] in cv.outputs:
        return False
    same = np.shape(cv.values[n.input[1]].value) == c.shape
    node.params["bias"] = _weight_name(
        cv, n.input[1], c, f"{node.name}.bias", "" if same else "bias"
    )
    return True
