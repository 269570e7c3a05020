"""ModelSpec ops as pure ``jax.numpy`` / ``jax.lax`` functions over a params pytree.

Canonical NCHW layout throughout (XLA picks its own physical layout). Every matmul and
convolution asks for ``Precision.HIGHEST`` so float32 means float32 on every device (no TF32 or
bf16 passes on GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.backends.common.pooling import avg_pool_divisor
from dlbench.model.spec import ResolvedNode

HIGHEST = lax.Precision.HIGHEST
Op = Callable[[list[jax.Array], ResolvedNode, dict[str, Any]], jax.Array]
OPS: dict[str, Op] = {}


def op(name: str) -> Callable[[Op], Op]:
    def deco(fn: Op) -> Op:
        OPS[name] = fn
        return fn

    return deco


def prepare(rn: ResolvedNode) -> dict[str, np.ndarray]:
    """The node's params pytree leaves (float32; LSTM biases summed once)."""
    p = {k: np.asarray(v, np.float32) for k, v in rn.params.items()}
    if rn.op == "lstm":
        p["bias"] = (rn.params["bias_ih"].astype(np.float64) + rn.params["bias_hh"]).astype(
            np.float32
        )
        del p["bias_ih"], p["bias_hh"]
    if rn.op == "batch_norm":
        scale = rn.params["weight"].astype(np.float64) / np.sqrt(
            rn.params["var"].astype(np.float64) + rn.attrs["eps"]
        )
        p = {
            "scale": scale.astype(np.float32),
            "shift": (rn.params["bias"] - rn.params["mean"] * scale).astype(np.float32),
        }
    return p


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=HIGHEST)


@op("conv2d")
def conv2d(xs, rn, p):
    a = rn.attrs
    t, b, l, r = a["pads"]  # noqa: E741
    y = lax.conv_general_dilated(
        xs[0],
        p["weight"],
        window_strides=tuple(a["stride"]),
        padding=((t, b), (l, r)),
        rhs_dilation=tuple(a["dilation"]),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=a["groups"],
        precision=HIGHEST,
    )
    return y + p["bias"][None, :, None, None] if "bias" in p else y


@op("batch_norm")
def batch_norm(xs, rn, p):
    x = xs[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * p["scale"].reshape(shape) + p["shift"].reshape(shape)


@op("dense")
def dense(xs, rn, p):
    y = _mm(xs[0], p["weight"].T)
    return y + p["bias"] if "bias" in p else y


OPS["relu"] = lambda xs, rn, p: jax.nn.relu(xs[0])
OPS["relu6"] = lambda xs, rn, p: jax.nn.relu6(xs[0])
OPS["sigmoid"] = lambda xs, rn, p: jax.nn.sigmoid(xs[0])
OPS["tanh"] = lambda xs, rn, p: jnp.tanh(xs[0])
OPS["silu"] = lambda xs, rn, p: jax.nn.silu(xs[0])
OPS["hard_swish"] = lambda xs, rn, p: xs[0] * jax.nn.relu6(xs[0] + 3.0) / 6.0
OPS["gelu"] = lambda xs, rn, p: jax.nn.gelu(xs[0], approximate=rn.attrs["approximate"] == "tanh")
OPS["dropout"] = lambda xs, rn, p: xs[0]
OPS["softmax"] = lambda xs, rn, p: jax.nn.softmax(xs[0], axis=rn.attrs["axis"])
OPS["flatten"] = lambda xs, rn, p: xs[0].reshape(xs[0].shape[0], -1)
OPS["reshape"] = lambda xs, rn, p: xs[0].reshape(xs[0].shape[0], *rn.attrs["shape"])
OPS["transpose"] = lambda xs, rn, p: jnp.transpose(xs[0], rn.attrs["perm"])
OPS["global_avg_pool"] = lambda xs, rn, p: jnp.mean(xs[0], axis=(2, 3))
OPS["reduce_mean"] = lambda xs, rn, p: jnp.mean(
    xs[0], axis=tuple(rn.attrs["axes"]), keepdims=rn.attrs["keepdims"]
)
OPS["concat"] = lambda xs, rn, p: jnp.concatenate(xs, axis=rn.attrs["axis"])
OPS["matmul"] = lambda xs, rn, p: _mm(xs[0], xs[1])
OPS["add"] = lambda xs, rn, p: xs[0] + (xs[1] if len(xs) == 2 else p["other"])
OPS["mul"] = lambda xs, rn, p: xs[0] * (xs[1] if len(xs) == 2 else p["other"])


@op("pad")
def pad(xs, rn, p):
    pads = rn.attrs["pads"]
    widths = [(0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)]
    return jnp.pad(xs[0], widths, constant_values=rn.attrs["value"])


@op("slice")
def slice_(xs, rn, p):
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


@op("max_pool")
def max_pool(xs, rn, p):
    return _pool(xs[0], rn, -jnp.inf, lax.max)


@op("avg_pool")
def avg_pool(xs, rn, p):
    s = _pool(xs[0], rn, 0.0, lax.add)
    div = avg_pool_divisor(rn.in_shapes[0][1:], rn.attrs, rn.out_shape[1:])
    return s * jnp.asarray((1.0 / div).astype(np.float32))


@op("layer_norm")
def layer_norm(xs, rn, p):
    x = xs[0]
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + rn.attrs["eps"]) * p["weight"] + p["bias"]


@op("multi_head_attention")
def multi_head_attention(xs, rn, p):
    x = xs[0]
    n, (t, d), h = x.shape[0], rn.in_shapes[0], rn.attrs["num_heads"]
    qkv = (_mm(x, p["in_weight"].T) + p["in_bias"]).reshape(n, t, 3, h, d // h)
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = jax.nn.softmax(_mm(q, k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d // h)), axis=-1)
    y = _mm(att, v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return _mm(y, p["out_weight"].T) + p["out_bias"]


@op("upsample")
def upsample(xs, rn, p):
    sh, sw = rn.attrs["scale_factor"]
    return jnp.repeat(jnp.repeat(xs[0], sh, axis=2), sw, axis=3)


@op("lstm")
def lstm(xs, rn, p):
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
