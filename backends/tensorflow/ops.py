"""ModelSpec ops in TensorFlow, NHWC inside.

Every op returns ``(tensor, layout)``: 4-D activations live in NHWC (``"nhwc"``) from the first
convolution or pooling on, other tensors in the canonical layout (``"canon"``). Ops that care
about axis order (flatten, reshape, transpose, softmax, ...) first bring their input back to
the canonical NCHW order, so every backend computes the same function on the same element
order. Weights arrive already transposed (once, at build time) by :func:`prepare`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from dlbench.backends.common.pooling import avg_pool_divisor
from dlbench.model.spec import ResolvedNode

NHWC, CANON = "nhwc", "canon"
Op = Callable[[list[tf.Tensor], list[str], ResolvedNode, dict[str, Any]], tuple[tf.Tensor, str]]
OPS: dict[str, Op] = {}


def op(name: str) -> Callable[[Op], Op]:
    def deco(fn: Op) -> Op:
        OPS[name] = fn
        return fn

    return deco


def to_nhwc(x: tf.Tensor, layout: str) -> tf.Tensor:
    return tf.transpose(x, (0, 2, 3, 1)) if layout == CANON else x


def to_canon(x: tf.Tensor, layout: str) -> tf.Tensor:
    return tf.transpose(x, (0, 3, 1, 2)) if layout == NHWC else x


def prepare(rn: ResolvedNode) -> dict[str, np.ndarray]:
    """Framework-layout float32 weights of one node (transposed once, here)."""
    p = {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
    out: dict[str, np.ndarray] = {}
    if rn.op == "conv2d":
        w = p["weight"]
        o, cg, kh, kw = w.shape
        g = rn.attrs["groups"]
        if g > 1 and cg == 1:  # depthwise: (kh, kw, C, multiplier)
            out["filter"] = w.reshape(g, o // g, kh, kw).transpose(2, 3, 0, 1)
        else:  # HWIO, groups stacked on the last axis
            out["filter"] = w.transpose(2, 3, 1, 0)
        if "bias" in p:
            out["bias"] = p["bias"]
    elif rn.op == "batch_norm":
        scale = p["weight"] / np.sqrt(p["var"] + rn.attrs["eps"])
        out["scale"] = scale
        out["shift"] = p["bias"] - p["mean"] * scale
    elif rn.op == "dense":
        out["kernel"] = p["weight"].T
        if "bias" in p:
            out["bias"] = p["bias"]
    elif rn.op == "multi_head_attention":
        out["in_kernel"] = p["in_weight"].T
        out["in_bias"] = p["in_bias"]
        out["out_kernel"] = p["out_weight"].T
        out["out_bias"] = p["out_bias"]
    elif rn.op == "lstm":
        out["kernel"] = p["weight_ih"].T
        out["recurrent_kernel"] = p["weight_hh"].T
        out["bias"] = p["bias_ih"] + p["bias_hh"]
    else:
        out = dict(p)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _pad(x: tf.Tensor, pads: list[int], value: float = 0.0) -> tf.Tensor:
    t, b, l, r = pads  # noqa: E741
    if not any(pads):
        return x
    return tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], constant_values=value)


@op("conv2d")
def conv2d(xs, lay, rn, w):
    a = rn.attrs
    x = _pad(to_nhwc(xs[0], lay[0]), a["pads"])
    strides, dil = [1, *a["stride"], 1], list(a["dilation"])
    g = a["groups"]
    f = w["filter"]
    if g == 1:
        y = tf.nn.conv2d(x, f, strides, "VALID", dilations=[1, *dil, 1])
    elif f.shape[2] == g and rn.in_shapes[0][0] == g:  # depthwise
        y = tf.nn.depthwise_conv2d(x, f, strides, "VALID", dilations=dil)
    else:
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
    return y, NHWC


@op("batch_norm")
def batch_norm(xs, lay, rn, w):
    x, layout = xs[0], lay[0]
    if x.shape.rank == 4:
        return to_nhwc(x, layout) * w["scale"] + w["shift"], NHWC
    if x.shape.rank == 3:  # (N, C, L)
        return x * w["scale"][:, None] + w["shift"][:, None], CANON
    return x * w["scale"] + w["shift"], CANON


@op("dense")
def dense(xs, lay, rn, w):
    x = to_canon(xs[0], lay[0])
    k = w["kernel"]
    if x.shape.rank == 2:
        y = tf.matmul(x, k)
    else:
        y = tf.reshape(tf.matmul(tf.reshape(x, [-1, k.shape[0]]), k), [-1, *rn.out_shape])
    return (y + w["bias"] if "bias" in w else y), CANON


def _unary(fn: Callable[[tf.Tensor, ResolvedNode], tf.Tensor]) -> Op:
    return lambda xs, lay, rn, w: (fn(xs[0], rn), lay[0])


OPS["relu"] = _unary(lambda x, rn: tf.nn.relu(x))
OPS["relu6"] = _unary(lambda x, rn: tf.nn.relu6(x))
OPS["sigmoid"] = _unary(lambda x, rn: tf.sigmoid(x))
OPS["tanh"] = _unary(lambda x, rn: tf.tanh(x))
OPS["silu"] = _unary(lambda x, rn: tf.nn.silu(x))
OPS["hard_swish"] = _unary(lambda x, rn: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0))
OPS["gelu"] = _unary(lambda x, rn: tf.nn.gelu(x, approximate=rn.attrs["approximate"] == "tanh"))
OPS["dropout"] = _unary(lambda x, rn: x)


def _canon(fn: Callable[[tf.Tensor, ResolvedNode, dict], tf.Tensor]) -> Op:
    return lambda xs, lay, rn, w: (fn(to_canon(xs[0], lay[0]), rn, w), CANON)


OPS["softmax"] = _canon(lambda x, rn, w: tf.nn.softmax(x, axis=rn.attrs["axis"]))
OPS["flatten"] = _canon(lambda x, rn, w: tf.reshape(x, [-1, int(np.prod(rn.out_shape))]))
OPS["reshape"] = _canon(lambda x, rn, w: tf.reshape(x, [-1, *rn.attrs["shape"]]))
OPS["transpose"] = _canon(lambda x, rn, w: tf.transpose(x, rn.attrs["perm"]))
OPS["reduce_mean"] = _canon(
    lambda x, rn, w: tf.reduce_mean(x, axis=rn.attrs["axes"], keepdims=rn.attrs["keepdims"])
)


@op("global_avg_pool")
def global_avg_pool(xs, lay, rn, w):
    axes = [1, 2] if lay[0] == NHWC else [2, 3]
    return tf.reduce_mean(xs[0], axis=axes), CANON


@op("max_pool")
def max_pool(xs, lay, rn, w):
    a = rn.attrs
    x = _pad(to_nhwc(xs[0], lay[0]), a["pads"], float("-inf"))
    return tf.nn.max_pool2d(x, a["kernel_size"], a["stride"], "VALID"), NHWC


@op("avg_pool")
def avg_pool(xs, lay, rn, w):
    a = rn.attrs
    x = _pad(to_nhwc(xs[0], lay[0]), a["pads"])
    y = tf.nn.avg_pool2d(x, a["kernel_size"], a["stride"], "VALID")
    kh, kw = a["kernel_size"]
    div = avg_pool_divisor(rn.in_shapes[0][1:], a, rn.out_shape[1:])
    if a["pads"] != [0, 0, 0, 0] and not np.all(div == kh * kw):
        y = y * tf.constant((kh * kw / div)[None, :, :, None], tf.float32)
    return y, NHWC


def _binary(fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> Op:
    def run(xs, lay, rn, w):
        if len(xs) == 2:
            if lay[0] == lay[1]:
                return fn(xs[0], xs[1]), lay[0]
            return fn(to_canon(xs[0], lay[0]), to_canon(xs[1], lay[1])), CANON
        return fn(to_canon(xs[0], lay[0]), w["other"]), CANON

    return run


OPS["add"] = _binary(tf.add)
OPS["mul"] = _binary(tf.multiply)

_TO_NHWC_AXIS = {1: 3, 2: 1, 3: 2}


def _per_axis(values: list, layout: str) -> list:
    """Per non-batch axis values in canonical (C, H, W) order -> the tensor's own axis order."""
    if layout == NHWC:
        c, h, w = values
        return [h, w, c]
    return list(values)


@op("pad")
def pad(xs, lay, rn, w):
    p = rn.attrs["pads"]
    pairs = _per_axis([[p[2 * i], p[2 * i + 1]] for i in range(len(p) // 2)], lay[0])
    return tf.pad(xs[0], [[0, 0], *pairs], constant_values=rn.attrs["value"]), lay[0]


@op("slice")
def slice_(xs, lay, rn, w):
    sl = _per_axis(rn.attrs["slices"], lay[0])
    return xs[0][(slice(None), *(slice(*s) for s in sl))], lay[0]


@op("concat")
def concat(xs, lay, rn, w):
    axis = rn.attrs["axis"]
    if len(rn.out_shape) == 3 and all(layout == NHWC for layout in lay):
        return tf.concat(xs, axis=_TO_NHWC_AXIS[axis]), NHWC
    return tf.concat([to_canon(x, layout) for x, layout in zip(xs, lay)], axis=axis), CANON


@op("matmul")
def matmul(xs, lay, rn, w):
    return tf.matmul(to_canon(xs[0], lay[0]), to_canon(xs[1], lay[1])), CANON


@op("layer_norm")
def layer_norm(xs, lay, rn, w):
    x = to_canon(xs[0], lay[0])
    mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
    y = (x - mean) * tf.math.rsqrt(var + rn.attrs["eps"])
    return y * w["weight"] + w["bias"], CANON


@op("multi_head_attention")
def multi_head_attention(xs, lay, rn, w):
    x = to_canon(xs[0], lay[0])
    t, d = rn.in_shapes[0]
    h = rn.attrs["num_heads"]
    qkv = tf.reshape(
        tf.matmul(tf.reshape(x, [-1, d]), w["in_kernel"]) + w["in_bias"], [-1, t, 3, h, d // h]
    )
    qkv = tf.transpose(qkv, (2, 0, 3, 1, 4))  # (3, N, H, T, Dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(d // h)), axis=-1)
    y = tf.reshape(tf.transpose(tf.matmul(att, v), (0, 2, 1, 3)), [-1, d])
    return tf.reshape(tf.matmul(y, w["out_kernel"]) + w["out_bias"], [-1, t, d]), CANON


@op("upsample")
def upsample(xs, lay, rn, w):
    sh, sw = rn.attrs["scale_factor"]
    x = to_nhwc(xs[0], lay[0])
    return tf.repeat(tf.repeat(x, sh, axis=1), sw, axis=2), NHWC


@op("lstm")
def lstm(xs, lay, rn, w):
    x = to_canon(xs[0], lay[0])
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
    return (tf.stack(seq, axis=1) if rn.attrs["return_sequences"] else h), CANON
