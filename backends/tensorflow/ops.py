"""ModelSpec ops in TensorFlow, NHWC inside.

An interpreter op table (:class:`~dlbench.backends.common.optable.InterpreterTable`): every
function takes the input values (each a :class:`Value`: a tensor with its layout), the node's
weights (``tf.Variable`` by key) and the node, and returns a :class:`Value`. 4-D activations
live in NHWC (``"nhwc"``) from the first convolution or pooling on, other tensors in the
canonical layout (``"canon"``). Ops that care about axis order (flatten, reshape, transpose, softmax, ...) first
bring their input back to the canonical NCHW order, so every backend computes the same function
on the same element order. Weights arrive already transposed (once, at build time) by
:func:`prepare`; :func:`weight_layout` says how each spec weight maps to a TensorFlow one and
back (the trainer exports with it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from dlbench.backends.common.optable import InterpreterTable
from dlbench.backends.common.pooling import avg_pool_divisor, pad_pairs
from dlbench.backends.common.weights import (
    NCHW_TO_NHWC,
    NHWC_TO_NCHW,
    conv_filter_layout,
    dense_to_kernel,
    fold_batch_norm,
    kernel_to_dense,
    sum_lstm_bias,
)
from dlbench.model.spec import ResolvedNode

NHWC, CANON = "nhwc", "canon"
OPS = InterpreterTable("TensorFlow")


class Value(NamedTuple):
    """A tensor and the layout it is in (:data:`NHWC` or :data:`CANON`)."""

    tensor: tf.Tensor
    layout: str


def to_nhwc(x: tf.Tensor, layout: str) -> tf.Tensor:
    return tf.transpose(x, NCHW_TO_NHWC) if layout == CANON else x


def to_canon(x: tf.Tensor, layout: str) -> tf.Tensor:
    return tf.transpose(x, NHWC_TO_NCHW) if layout == NHWC else x


def nhwc(v: Value) -> tf.Tensor:
    return to_nhwc(v.tensor, v.layout)


def canon(v: Value) -> tf.Tensor:
    return to_canon(v.tensor, v.layout)


Convert = Callable[[np.ndarray], np.ndarray]


def _same(a: np.ndarray) -> np.ndarray:
    return a


#: spec role -> TensorFlow key, for the ops whose weights are stored transposed
_KEYS = {
    "conv2d": {"weight": "filter"},
    "dense": {"weight": "kernel"},
    "multi_head_attention": {"in_weight": "in_kernel", "out_weight": "out_kernel"},
    "lstm": {"weight_ih": "kernel", "weight_hh": "recurrent_kernel"},
}


def weight_layout(rn: ResolvedNode) -> dict[str, tuple[str, Convert, Convert]]:
    """Spec role -> ``(TF key, to TF layout, back to canonical)`` for the node's weights that
    map one to one (batch-norm statistics and LSTM biases are folded: not listed)."""
    keys = _KEYS.get(rn.op, {})
    out: dict[str, tuple[str, Convert, Convert]] = {}
    for role in rn.params:
        if rn.op == "batch_norm" or (rn.op == "lstm" and role.startswith("bias")):
            continue
        fwd: Convert = _same
        back: Convert = _same
        if rn.op == "conv2d" and role == "weight":
            fwd, back = conv_filter_layout(rn.params[role].shape, rn.attrs["groups"])
        elif role in keys:
            fwd, back = dense_to_kernel, kernel_to_dense
        out[role] = (keys.get(role, role), fwd, back)
    return out


def prepare(rn: ResolvedNode) -> dict[str, np.ndarray]:
    """Framework-layout float32 weights of one node (transposed once, here)."""
    p = {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
    out = {key: fwd(p[role]) for role, (key, fwd, _) in weight_layout(rn).items()}
    if rn.op == "batch_norm":
        out["scale"], out["shift"] = fold_batch_norm(**p, eps=rn.attrs["eps"])
    elif rn.op == "lstm":
        out["bias"] = sum_lstm_bias(p["bias_ih"], p["bias_hh"])
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _pad(x: tf.Tensor, pads: list[int], value: float = 0.0) -> tf.Tensor:
    t, b, l, r = pads  # noqa: E741
    if not any(pads):
        return x
    return tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], constant_values=value)


def same_pads(in_hw, kernel, stride, dilation=(1, 1)) -> list[int]:
    """(top, bottom, left, right): what TensorFlow's ``"SAME"`` padding adds for this window."""
    out = []
    for n, k, s, d in zip(in_hw, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        out += [total // 2, total - total // 2]
    return out


def _padding(x: tf.Tensor, rn: ResolvedNode, kernel, value: float = 0.0) -> tuple[tf.Tensor, str]:
    """The input and the padding mode of a convolution or max pool: ``"SAME"`` when the spec's
    pads are what TensorFlow's SAME adds (the kernel pads as it reads: no padded copy of the
    activation, as a Keras ``padding="same"`` layer runs), else an explicit pad then
    ``"VALID"``."""
    a = rn.attrs
    pads = list(a["pads"])
    if any(pads) and pads == same_pads(
        rn.in_shapes[0][1:], kernel, a["stride"], a.get("dilation", (1, 1))
    ):
        return x, "SAME"
    return _pad(x, pads, value), "VALID"


@OPS.register("conv2d")
def conv2d(xs, w, rn):
    a = rn.attrs
    f = w["filter"]
    x, mode = _padding(nhwc(xs[0]), rn, f.shape[:2])
    strides, dil = [1, *a["stride"], 1], list(a["dilation"])
    g = a["groups"]
    if g == 1:
        y = tf.nn.conv2d(x, f, strides, mode, dilations=[1, *dil, 1])
    elif f.shape[2] == g and rn.in_shapes[0][0] == g:  # depthwise
        y = tf.nn.depthwise_conv2d(x, f, strides, mode, dilations=dil)
    else:
        x = _pad(x, a["pads"]) if mode == "SAME" else x  # grouped: split after padding
        og = f.shape[3] // g
        parts = tf.split(x, g, axis=3)
        y = tf.concat(
            [
                tf.nn.conv2d(
                    parts[i],
                    f[:, :, :, i * og : (i + 1) * og],
                    strides,
                    "VALID",
                    dilations=[1, *dil, 1],
                )
                for i in range(g)
            ],
            axis=3,
        )
    if "bias" in w:
        y = tf.nn.bias_add(y, w["bias"])
    return Value(y, NHWC)


@OPS.register("batch_norm")
def batch_norm(xs, w, rn):
    x = xs[0].tensor
    if x.shape.rank == 4:
        return Value(nhwc(xs[0]) * w["scale"] + w["shift"], NHWC)
    if x.shape.rank == 3:  # (N, C, L)
        return Value(x * w["scale"][:, None] + w["shift"][:, None], CANON)
    return Value(x * w["scale"] + w["shift"], CANON)


@OPS.register("dense")
def dense(xs, w, rn):
    x = canon(xs[0])
    k = w["kernel"]
    if x.shape.rank == 2:
        y = tf.matmul(x, k)
    else:
        y = tf.reshape(tf.matmul(tf.reshape(x, [-1, k.shape[0]]), k), [-1, *rn.out_shape])
    return Value(y + w["bias"] if "bias" in w else y, CANON)


def _unary(fn: Callable[[tf.Tensor, ResolvedNode], tf.Tensor]) -> Callable[..., Value]:
    """An elementwise op: any layout in, the same layout out."""
    return lambda xs, w, rn: Value(fn(xs[0].tensor, rn), xs[0].layout)


OPS["relu"] = _unary(lambda x, rn: tf.nn.relu(x))
OPS["relu6"] = _unary(lambda x, rn: tf.nn.relu6(x))
OPS["sigmoid"] = _unary(lambda x, rn: tf.sigmoid(x))
OPS["tanh"] = _unary(lambda x, rn: tf.tanh(x))
OPS["silu"] = _unary(lambda x, rn: tf.nn.silu(x))
OPS["hard_swish"] = _unary(lambda x, rn: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0))
OPS["gelu"] = _unary(lambda x, rn: tf.nn.gelu(x, approximate=rn.attrs["approximate"] == "tanh"))
OPS["dropout"] = _unary(lambda x, rn: x)
OPS["sqrt"] = _unary(lambda x, rn: tf.sqrt(x))
OPS["reciprocal"] = _unary(lambda x, rn: tf.math.reciprocal(x))
OPS["erf"] = _unary(lambda x, rn: tf.math.erf(x))


def _canon(fn: Callable[[tf.Tensor, ResolvedNode, Any], tf.Tensor]) -> Callable[..., Value]:
    """An op that cares about axis order: canonical in, canonical out."""
    return lambda xs, w, rn: Value(fn(canon(xs[0]), rn, w), CANON)


OPS["softmax"] = _canon(lambda x, rn, w: tf.nn.softmax(x, axis=rn.attrs["axis"]))
OPS["flatten"] = _canon(lambda x, rn, w: tf.reshape(x, [-1, int(np.prod(rn.out_shape))]))
OPS["reshape"] = _canon(lambda x, rn, w: tf.reshape(x, [-1, *rn.attrs["shape"]]))
OPS["transpose"] = _canon(lambda x, rn, w: tf.transpose(x, rn.attrs["perm"]))
OPS["reduce_mean"] = _canon(
    lambda x, rn, w: tf.reduce_mean(x, axis=rn.attrs["axes"], keepdims=rn.attrs["keepdims"])
)


@OPS.register("global_avg_pool")
def global_avg_pool(xs, w, rn):
    axes = [1, 2] if xs[0].layout == NHWC else [2, 3]
    return Value(tf.reduce_mean(xs[0].tensor, axis=axes), CANON)


@OPS.register("max_pool")
def max_pool(xs, w, rn):
    a = rn.attrs
    x, mode = _padding(nhwc(xs[0]), rn, a["kernel_size"], float("-inf"))
    return Value(tf.nn.max_pool2d(x, a["kernel_size"], a["stride"], mode), NHWC)


@OPS.register("avg_pool")
def avg_pool(xs, w, rn):
    a = rn.attrs
    x = _pad(nhwc(xs[0]), a["pads"])
    y = tf.nn.avg_pool2d(x, a["kernel_size"], a["stride"], "VALID")
    kh, kw = a["kernel_size"]
    div = avg_pool_divisor(rn.in_shapes[0][1:], a, rn.out_shape[1:])
    if a["pads"] != [0, 0, 0, 0] and not np.all(div == kh * kw):
        y = y * tf.constant((kh * kw / div)[None, :, :, None], tf.float32)
    return Value(y, NHWC)


def _binary(fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> Callable[..., Value]:
    def run(xs: list[Value], w: Any, rn: ResolvedNode) -> Value:
        if len(xs) == 2:
            if xs[0].layout == xs[1].layout:
                return Value(fn(xs[0].tensor, xs[1].tensor), xs[0].layout)
            return Value(fn(canon(xs[0]), canon(xs[1])), CANON)
        return Value(fn(canon(xs[0]), w["other"]), CANON)

    return run


OPS["add"] = _binary(tf.add)
OPS["mul"] = _binary(tf.multiply)
OPS["div"] = _binary(tf.divide)

_TO_NHWC_AXIS = {1: 3, 2: 1, 3: 2}


def _per_axis(values: list, layout: str) -> list:
    """Per non-batch axis values in canonical (C, H, W) order -> the tensor's own axis order."""
    if layout == NHWC:
        c, h, w = values
        return [h, w, c]
    return list(values)


@OPS.register("pad")
def pad(xs, w, rn):
    pairs = _per_axis([list(p) for p in pad_pairs(rn.attrs["pads"])], xs[0].layout)
    y = tf.pad(xs[0].tensor, [[0, 0], *pairs], constant_values=rn.attrs["value"])
    return Value(y, xs[0].layout)


@OPS.register("slice")
def slice_(xs, w, rn):
    sl = _per_axis(rn.attrs["slices"], xs[0].layout)
    return Value(xs[0].tensor[(slice(None), *(slice(*s) for s in sl))], xs[0].layout)


@OPS.register("concat")
def concat(xs, w, rn):
    axis = rn.attrs["axis"]
    if len(rn.out_shape) == 3 and all(v.layout == NHWC for v in xs):
        return Value(tf.concat([v.tensor for v in xs], axis=_TO_NHWC_AXIS[axis]), NHWC)
    return Value(tf.concat([canon(v) for v in xs], axis=axis), CANON)


@OPS.register("matmul")
def matmul(xs, w, rn):
    return Value(tf.matmul(canon(xs[0]), canon(xs[1])), CANON)


@OPS.register("layer_norm")
def layer_norm(xs, w, rn):
    x = canon(xs[0])
    mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
    y = (x - mean) * tf.math.rsqrt(var + rn.attrs["eps"])
    return Value(y * w["weight"] + w["bias"], CANON)


@OPS.register("multi_head_attention")
def multi_head_attention(xs, w, rn):
    x = canon(xs[0])
    t, d = rn.in_shapes[0]
    h = rn.attrs["num_heads"]
    qkv = tf.reshape(
        tf.matmul(tf.reshape(x, [-1, d]), w["in_kernel"]) + w["in_bias"], [-1, t, 3, h, d // h]
    )
    qkv = tf.transpose(qkv, (2, 0, 3, 1, 4))  # (3, N, H, T, Dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(d // h)), axis=-1)
    y = tf.reshape(tf.transpose(tf.matmul(att, v), (0, 2, 1, 3)), [-1, d])
    return Value(tf.reshape(tf.matmul(y, w["out_kernel"]) + w["out_bias"], [-1, t, d]), CANON)


@OPS.register("upsample")
def upsample(xs, w, rn):
    sh, sw = rn.attrs["scale_factor"]
    x = nhwc(xs[0])
    return Value(tf.repeat(tf.repeat(x, sh, axis=1), sw, axis=2), NHWC)


@OPS.register("lstm")
def lstm(xs, w, rn):
    x = canon(xs[0])
    t, f = rn.in_shapes[0]
    hs = rn.attrs["hidden_size"]
    xw = tf.reshape(tf.matmul(tf.reshape(x, [-1, f]), w["kernel"]) + w["bias"], [-1, t, 4 * hs])
    h = tf.zeros_like(xw[:, 0, :hs])
    c = h
    seq = []
    for step in range(t):  # unrolled: t is static
        z = xw[:, step] + tf.matmul(h, w["recurrent_kernel"])
        i, fg, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(fg) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        seq.append(h)
    return Value(tf.stack(seq, axis=1) if rn.attrs["return_sequences"] else h, CANON)


@OPS.register("embedding")
def embedding(xs: list[Value], w: dict[str, Any], rn: ResolvedNode) -> Value:
    # ids in [0, V): Model.to_device checks them on the host
    return Value(tf.gather(w["weight"], canon(xs[0])), CANON)
