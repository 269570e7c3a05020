"""ModelSpec ops as pure ``jax.numpy`` / ``jax.lax`` functions over a params pytree.

:data:`OPS` computes in the canonical NCHW layout (training and export walk it); the inference
build reads 4-D activations NHWC where the layout plan puts them
(:mod:`dlbench.backends.common.layout`), through :data:`NHWC_OPS`. Every matmul and
convolution asks for ``Precision.HIGHEST`` so float32 means float32 on every device (no TF32 or
bf16 passes on GPU).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.backends.common.layout import NHWC, axis_of, per_axis
from dlbench.backends.common.optable import InterpreterTable
from dlbench.backends.common.pooling import avg_pool_divisor, pad_pairs
from dlbench.backends.common.weights import fold_batch_norm, sum_lstm_bias
from dlbench.model.spec import ResolvedNode

HIGHEST = lax.Precision.HIGHEST
OPS = InterpreterTable("JAX")


def prepare(rn: ResolvedNode) -> dict[str, np.ndarray]:
    """The node's params pytree leaves (float32; batch norm folded, LSTM biases summed once)."""
    p = {k: np.asarray(v, np.float32) for k, v in rn.params.items()}
    if rn.op == "lstm":
        p["bias"] = sum_lstm_bias(p.pop("bias_ih"), p.pop("bias_hh")).astype(np.float32)
    if rn.op == "batch_norm":
        scale, shift = fold_batch_norm(**p, eps=rn.attrs["eps"])
        p = {"scale": scale.astype(np.float32), "shift": shift.astype(np.float32)}
    return p


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=HIGHEST)


def conv2d_kernel(xs, p, rn, kernel_layout: str, data_layout: str = "NCHW"):
    """conv2d with the weight in ``kernel_layout`` ("OIHW" as the spec stores it, or "HWIO"
    when the build arranged it once for XLA), input and output in ``data_layout`` ("NCHW", or
    "NHWC" where the build's layout plan keeps the activation channels-last)."""
    a = rn.attrs
    t, b, l, r = a["pads"]  # noqa: E741
    y = lax.conv_general_dilated(
        xs[0],
        p["weight"],
        window_strides=tuple(a["stride"]),
        padding=((t, b), (l, r)),
        rhs_dilation=tuple(a["dilation"]),
        dimension_numbers=(data_layout, kernel_layout, data_layout),
        feature_group_count=a["groups"],
        precision=HIGHEST,
    )
    if "bias" not in p:
        return y
    return y + (p["bias"] if data_layout == "NHWC" else p["bias"][None, :, None, None])


@OPS.register("conv2d")
def conv2d(xs, p, rn):
    return conv2d_kernel(xs, p, rn, "OIHW")


@OPS.register("batch_norm")
def batch_norm(xs, p, rn):
    x = xs[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * p["scale"].reshape(shape) + p["shift"].reshape(shape)


@OPS.register("dense")
def dense(xs, p, rn):
    y = _mm(xs[0], p["weight"].T)
    return y + p["bias"] if "bias" in p else y


OPS["relu"] = lambda xs, p, rn: jax.nn.relu(xs[0])
OPS["relu6"] = lambda xs, p, rn: jax.nn.relu6(xs[0])
OPS["sigmoid"] = lambda xs, p, rn: jax.nn.sigmoid(xs[0])
OPS["tanh"] = lambda xs, p, rn: jnp.tanh(xs[0])
OPS["silu"] = lambda xs, p, rn: jax.nn.silu(xs[0])
OPS["hard_swish"] = lambda xs, p, rn: xs[0] * jax.nn.relu6(xs[0] + 3.0) / 6.0
OPS["gelu"] = lambda xs, p, rn: jax.nn.gelu(xs[0], approximate=rn.attrs["approximate"] == "tanh")
OPS["dropout"] = lambda xs, p, rn: xs[0]
OPS["sqrt"] = lambda xs, p, rn: jnp.sqrt(xs[0])
OPS["reciprocal"] = lambda xs, p, rn: 1.0 / xs[0]
OPS["erf"] = lambda xs, p, rn: lax.erf(xs[0])
OPS["softmax"] = lambda xs, p, rn: jax.nn.softmax(xs[0], axis=rn.attrs["axis"])
OPS["flatten"] = lambda xs, p, rn: xs[0].reshape(xs[0].shape[0], -1)
OPS["reshape"] = lambda xs, p, rn: xs[0].reshape(xs[0].shape[0], *rn.attrs["shape"])
OPS["transpose"] = lambda xs, p, rn: jnp.transpose(xs[0], rn.attrs["perm"])
OPS["global_avg_pool"] = lambda xs, p, rn: jnp.mean(xs[0], axis=(2, 3))
OPS["reduce_mean"] = lambda xs, p, rn: jnp.mean(
    xs[0], axis=tuple(rn.attrs["axes"]), keepdims=rn.attrs["keepdims"]
)
OPS["concat"] = lambda xs, p, rn: jnp.concatenate(xs, axis=rn.attrs["axis"])
OPS["matmul"] = lambda xs, p, rn: _mm(xs[0], xs[1])
OPS["add"] = lambda xs, p, rn: xs[0] + (xs[1] if len(xs) == 2 else p["other"])
OPS["mul"] = lambda xs, p, rn: xs[0] * (xs[1] if len(xs) == 2 else p["other"])
OPS["div"] = lambda xs, p, rn: xs[0] / (xs[1] if len(xs) == 2 else p["other"])


@OPS.register("pad")
def pad(xs, p, rn):
    widths = [(0, 0), *pad_pairs(rn.attrs["pads"])]
    return jnp.pad(xs[0], widths, constant_values=rn.attrs["value"])


@OPS.register("slice")
def slice_(xs, p, rn):
    x, sl = xs[0], rn.attrs["slices"]
    return lax.slice(
        x, (0, *(s[0] for s in sl)), (x.shape[0], *(s[1] for s in sl)), (1, *(s[2] for s in sl))
    )


def _pool(x, rn, init, fn):
    a = rn.attrs
    t, b, l, r = a["pads"]  # noqa: E741
    return lax.reduce_window(
        x,
        init,
        fn,
        (1, 1, *a["kernel_size"]),
        (1, 1, *a["stride"]),
        ((0, 0), (0, 0), (t, b), (l, r)),
    )


@OPS.register("max_pool")
def max_pool(xs, p, rn):
    return _pool(xs[0], rn, -jnp.inf, lax.max)


@OPS.register("avg_pool")
def avg_pool(xs, p, rn):
    s = _pool(xs[0], rn, 0.0, lax.add)
    div = avg_pool_divisor(rn.in_shapes[0][1:], rn.attrs, rn.out_shape[1:])
    return s * jnp.asarray((1.0 / div).astype(np.float32))


@OPS.register("layer_norm")
def layer_norm(xs, p, rn):
    x = xs[0]
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + rn.attrs["eps"]) * p["weight"] + p["bias"]


@OPS.register("multi_head_attention")
def multi_head_attention(xs, p, rn):
    x = xs[0]
    n, (t, d), h = x.shape[0], rn.in_shapes[0], rn.attrs["num_heads"]
    qkv = (_mm(x, p["in_weight"].T) + p["in_bias"]).reshape(n, t, 3, h, d // h)
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = jax.nn.softmax(_mm(q, k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d // h)), axis=-1)
    y = _mm(att, v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return _mm(y, p["out_weight"].T) + p["out_bias"]


@OPS.register("upsample")
def upsample(xs, p, rn):
    sh, sw = rn.attrs["scale_factor"]
    return jnp.repeat(jnp.repeat(xs[0], sh, axis=2), sw, axis=3)


@OPS.register("lstm")
def lstm(xs, p, rn):
    x = xs[0]
    hs = rn.attrs["hidden_size"]
    xw = _mm(x, p["weight_ih"].T) + p["bias"]  # (N, T, 4H)
    whh_t = p["weight_hh"].T

    def step(carry, z_x):
        h, c = carry
        z = z_x + _mm(h, whh_t)
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    h0 = jnp.zeros((x.shape[0], hs), x.dtype)
    (h, _), seq = lax.scan(step, (h0, h0), jnp.swapaxes(xw, 0, 1))
    return jnp.swapaxes(seq, 0, 1) if rn.attrs["return_sequences"] else h


@OPS.register("embedding")
def embedding(xs: list, p: dict, rn: ResolvedNode) -> jax.Array:
    # ids in [0, V): Model.to_device checks them on the host (a JAX gather would clamp)
    return jnp.take(p["weight"], xs[0], axis=0)


# -- channels-last variants ---------------------------------------------------------------------
# What a node computes when the build's layout plan (dlbench.backends.common.layout) hands it
# NHWC input: the same function as the canonical op above, with the axes mapped. Ops not listed
# here (activations, add/mul/div) compute the same thing in either layout.


def conv2d_nhwc(xs, p, rn):
    """conv2d on an NHWC input with an HWIO kernel (arranged once at build time), NHWC out."""
    return conv2d_kernel(xs, p, rn, "HWIO", "NHWC")


def _pool_nhwc(x, rn, init, fn):
    a = rn.attrs
    t, b, l, r = a["pads"]  # noqa: E741
    return lax.reduce_window(
        x,
        init,
        fn,
        (1, *a["kernel_size"], 1),
        (1, *a["stride"], 1),
        ((0, 0), (t, b), (l, r), (0, 0)),
    )


def _avg_pool_nhwc(xs, p, rn):
    s = _pool_nhwc(xs[0], rn, 0.0, lax.add)
    div = avg_pool_divisor(rn.in_shapes[0][1:], rn.attrs, rn.out_shape[1:])
    return s * jnp.asarray((1.0 / div).astype(np.float32)[:, :, None])


def _reduce_mean_nhwc(xs, p, rn):
    axes = tuple(axis_of(a, NHWC) for a in rn.attrs["axes"])
    return jnp.mean(xs[0], axis=axes, keepdims=rn.attrs["keepdims"])


def _pad_nhwc(xs, p, rn):
    widths = [(0, 0), *per_axis(list(pad_pairs(rn.attrs["pads"])), NHWC)]
    return jnp.pad(xs[0], widths, constant_values=rn.attrs["value"])


def _slice_nhwc(xs, p, rn):
    x, sl = xs[0], per_axis(rn.attrs["slices"], NHWC)
    return lax.slice(
        x, (0, *(s[0] for s in sl)), (x.shape[0], *(s[1] for s in sl)), (1, *(s[2] for s in sl))
    )


#: the params key of a constant operand's NHWC copy (``other`` -> ``other_nhwc``)
NHWC_SUFFIX = "_nhwc"


def _binary_nhwc(fn):
    return lambda xs, p, rn: fn(xs[0], xs[1] if len(xs) == 2 else p["other" + NHWC_SUFFIX])


#: op -> its function on NHWC input (see :func:`dlbench.backends.common.layout.plan_layouts`)
NHWC_OPS = {
    "add": _binary_nhwc(jnp.add),
    "mul": _binary_nhwc(jnp.multiply),
    "div": _binary_nhwc(jnp.divide),
    "conv2d": conv2d_nhwc,
    "batch_norm": lambda xs, p, rn: xs[0] * p["scale"] + p["shift"],
    "max_pool": lambda xs, p, rn: _pool_nhwc(xs[0], rn, -jnp.inf, lax.max),
    "avg_pool": _avg_pool_nhwc,
    "upsample": lambda xs, p, rn: jnp.repeat(
        jnp.repeat(xs[0], rn.attrs["scale_factor"][0], axis=1), rn.attrs["scale_factor"][1], axis=2
    ),
    "pad": _pad_nhwc,
    "slice": _slice_nhwc,
    "softmax": lambda xs, p, rn: jax.nn.softmax(xs[0], axis=axis_of(rn.attrs["axis"], NHWC)),
    "global_avg_pool": lambda xs, p, rn: jnp.mean(xs[0], axis=(1, 2)),
    "reduce_mean": _reduce_mean_nhwc,
    "concat": lambda xs, p, rn: jnp.concatenate(xs, axis=axis_of(rn.attrs["axis"], NHWC)),
}
