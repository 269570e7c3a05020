"""ModelSpec ops in plain NumPy, float64: the reference every other backend is checked against.

Written for clarity and exactness, not speed. An interpreter op table
(:class:`~dlbench.backends.common.optable.InterpreterTable`): every function takes the input
arrays, the node's float64 weights and the :class:`~dlbench.model.spec.ResolvedNode`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from dlbench.backends.common.optable import InterpreterTable
from dlbench.backends.common.pooling import avg_pool_divisor, pad_pairs
from dlbench.model.spec import ResolvedNode

try:  # SciPy comes with scikit-learn, a core dependency; keep a fallback anyway
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf, otypes=[np.float64])

Params = Mapping[str, np.ndarray]
OPS = InterpreterTable("NumPy")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


#: Values (float64) of one im2col block: 1 MiB, about one CIFAR-sized image's patches, so the
#: patches are still in the core's cache when the matrix product reads them (a 64 MiB block
#: measured 1.5-2x slower on resnet20's convolutions) and a large batch never materialises them all.
_IM2COL_BLOCK = 1 << 17

#: ``epilogue(out, index)``: called on each block of the NHWC output, ``out`` = the output's
#: ``[index]`` (``index``: a slice of images and one of output rows), right after its product,
#: while it is in cache (see ``program.py``).
Epilogue = Callable[[np.ndarray, tuple[slice, slice]], None]


def conv2d_matrices(w: np.ndarray, groups: int) -> list[np.ndarray]:
    """Per group, the (KH*KW*Cg, Og) matrix the patches multiply: (O, Cg, KH, KW) -> (KH, KW,
    Cg, Og), the patches' column order. Computed once per model by the program."""
    og = w.shape[0] // groups
    o, cg, kh, kw = w.shape
    return [
        np.ascontiguousarray(w[k * og : (k + 1) * og].transpose(2, 3, 1, 0)).reshape(
            kh * kw * cg, og
        )
        for k in range(groups)
    ]


def _depthwise(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, n: ResolvedNode
) -> np.ndarray:
    """A depthwise convolution: KH*KW multiply-adds over the input (no product to batch)."""
    t, b, l, r = n.attrs["pads"]  # noqa: E741
    (sh, sw), (dh, dw) = n.attrs["stride"], n.attrs["dilation"]
    o, _, kh, kw = w.shape
    _, oh, ow = n.out_shape
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r))) if t or b or l or r else x
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            tap = xp[
                :,
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
            ]
            out += tap * w[:, 0, i, j][None, :, None, None]
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def conv2d_apply(
    x: np.ndarray,
    w: np.ndarray,
    mats: list[np.ndarray] | None,
    bias: np.ndarray | None,
    n: ResolvedNode,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """The convolution of ``x`` (NCHW, any memory order) by ``w`` (OIHW), returned as an NCHW
    view of NHWC memory. ``mats``: :func:`conv2d_matrices` of ``w`` (None: computed here)."""
    (sh, sw), (dh, dw), g = n.attrs["stride"], n.attrs["dilation"], n.attrs["groups"]
    o, cg, kh, kw = w.shape
    og = o // g
    if g > 1 and cg == 1 and og == 1:
        out = _depthwise(x, w, bias, n)
        if epilogue is not None:
            epilogue(out.transpose(0, 2, 3, 1), (slice(None), slice(None)))
        return out
    t, b, l, r = n.attrs["pads"]  # noqa: E741
    _, oh, ow = n.out_shape
    nb, c, h, wd = x.shape
    mats = conv2d_matrices(w, g) if mats is None else mats
    xp = np.empty((nb, h + t + b, wd + l + r, c))  # NHWC, padded: only the border is zeroed
    if t or b or l or r:
        xp[:, :t] = 0.0
        xp[:, t + h :] = 0.0
        xp[:, t : t + h, :l] = 0.0
        xp[:, t : t + h, l + wd :] = 0.0
    xp[:, t : t + h, l : l + wd, :] = x.transpose(0, 2, 3, 1)
    s_n, s_h, s_w, s_c = xp.strides
    patches = np.lib.stride_tricks.as_strided(  # (N, OH, OW, KH, KW, C), read-only view
        xp,
        shape=(nb, oh, ow, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
        writeable=False,
    )
    out = np.empty((nb, oh, ow, o))
    per_row = ow * kh * kw * cg  # patch values of one output row
    if per_row * oh <= _IM2COL_BLOCK:  # whole images per block
        step = max(1, min(nb, _IM2COL_BLOCK // (per_row * oh)))
        blocks = [(slice(n0, min(nb, n0 + step)), slice(0, oh)) for n0 in range(0, nb, step)]
    else:  # a large image: a few output rows per block, the blocks of even size
        parts = -(-oh // max(1, _IM2COL_BLOCK // per_row))
        step = -(-oh // parts)
        blocks = [
            (slice(i, i + 1), slice(r0, min(oh, r0 + step)))
            for i in range(nb)
            for r0 in range(0, oh, step)
        ]
    most = max(((b.stop - b.start) * (r.stop - r.start) for b, r in blocks), default=0)
    buf = np.empty(most * per_row)
    for idx in blocks:  # idx: (images, output rows) of this block
        blk = out[idx]
        bn, br = blk.shape[:2]
        rows = bn * br * ow
        for k in range(g):
            cols = buf[: rows * kh * kw * cg].reshape(bn, br, ow, kh, kw, cg)
            np.copyto(cols, patches[idx][..., k * cg : (k + 1) * cg])
            cols = cols.reshape(rows, kh * kw * cg)
            if g == 1:  # the product written straight into the output
                np.matmul(cols, mats[0], out=blk.reshape(rows, o))
            else:
                blk[..., k * og : (k + 1) * og] = (cols @ mats[k]).reshape(bn, br, ow, og)
        if bias is not None:
            blk += bias
        if epilogue is not None:
            epilogue(blk, idx)
    return out.transpose(0, 3, 1, 2)


@OPS.register("conv2d")
def conv2d(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    """im2col + one BLAS matrix product per block of images (per group), in float64.

    Channels-last inside: the input is copied into a padded NHWC buffer (a plain copy when it is
    already channels-last in memory, as every convolution's output is), the patches are a
    strided view ``(N, OH, OW, KH, KW, C)`` of it, copied one block of images (or of output rows
    of one large image) at a time (:data:`_IM2COL_BLOCK`) into a ``(rows, KH * KW * C)`` matrix
    through one reused buffer, and the product
    lands in an NHWC buffer returned as an NCHW view (elementwise ops keep that memory order).
    Depthwise convolutions sum the taps directly (no product to batch).
    """
    return conv2d_apply(xs[0], p["weight"], None, p.get("bias"), n)


@OPS.register("batch_norm")
def batch_norm(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    x = xs[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = p["weight"] / np.sqrt(p["var"] + n.attrs["eps"])
    return (x - p["mean"].reshape(shape)) * scale.reshape(shape) + p["bias"].reshape(shape)


@OPS.register("dense")
def dense(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    y = xs[0] @ p["weight"].T
    return y + p["bias"] if "bias" in p else y


OPS["relu"] = lambda xs, p, n: np.maximum(xs[0], 0.0)
OPS["relu6"] = lambda xs, p, n: np.clip(xs[0], 0.0, 6.0)
OPS["sigmoid"] = lambda xs, p, n: sigmoid(xs[0])
OPS["tanh"] = lambda xs, p, n: np.tanh(xs[0])
OPS["silu"] = lambda xs, p, n: xs[0] * sigmoid(xs[0])
OPS["hard_swish"] = lambda xs, p, n: xs[0] * np.clip(xs[0] + 3.0, 0.0, 6.0) / 6.0
OPS["dropout"] = lambda xs, p, n: xs[0]
OPS["sqrt"] = lambda xs, p, n: np.sqrt(xs[0])
OPS["reciprocal"] = lambda xs, p, n: 1.0 / xs[0]
OPS["erf"] = lambda xs, p, n: _erf(xs[0])
OPS["softmax"] = lambda xs, p, n: softmax(xs[0], n.attrs["axis"])
OPS["flatten"] = lambda xs, p, n: xs[0].reshape(xs[0].shape[0], -1)
OPS["reshape"] = lambda xs, p, n: xs[0].reshape(xs[0].shape[0], *n.attrs["shape"])
OPS["transpose"] = lambda xs, p, n: xs[0].transpose(n.attrs["perm"])
OPS["global_avg_pool"] = lambda xs, p, n: xs[0].mean(axis=(2, 3))
OPS["concat"] = lambda xs, p, n: np.concatenate(xs, axis=n.attrs["axis"])
OPS["matmul"] = lambda xs, p, n: xs[0] @ xs[1]
OPS["reduce_mean"] = lambda xs, p, n: xs[0].mean(
    axis=tuple(n.attrs["axes"]), keepdims=n.attrs["keepdims"]
)


@OPS.register("pad")
def pad(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    widths = [(0, 0), *pad_pairs(n.attrs["pads"])]
    return np.pad(xs[0], widths, constant_values=n.attrs["value"])


@OPS.register("slice")
def slice_(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return xs[0][(slice(None), *(slice(*s) for s in n.attrs["slices"]))]


@OPS.register("gelu")
def gelu(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    x = xs[0]
    if n.attrs["approximate"] == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


@OPS.register("add")
def add(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return xs[0] + (xs[1] if len(xs) == 2 else p["other"])


@OPS.register("mul")
def mul(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return xs[0] * (xs[1] if len(xs) == 2 else p["other"])


@OPS.register("div")
def div(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return xs[0] / (xs[1] if len(xs) == 2 else p["other"])


def _windows(x: np.ndarray, n: ResolvedNode, fill: float) -> np.ndarray:
    t, b, l, r = n.attrs["pads"]  # noqa: E741
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)
    (kh, kw), (sh, sw) = n.attrs["kernel_size"], n.attrs["stride"]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    _, oh, ow = n.out_shape
    return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]


@OPS.register("max_pool")
def max_pool(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return _windows(xs[0], n, -np.inf).max(axis=(4, 5))


@OPS.register("avg_pool")
def avg_pool(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    s = _windows(xs[0], n, 0.0).sum(axis=(4, 5))
    return s / avg_pool_divisor(n.in_shapes[0][1:], n.attrs, n.out_shape[1:])


@OPS.register("layer_norm")
def layer_norm(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    x = xs[0]
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + n.attrs["eps"]) * p["weight"] + p["bias"]


@OPS.register("multi_head_attention")
def multi_head_attention(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    x, h = xs[0], n.attrs["num_heads"]
    nb, t, d = x.shape
    qkv = x @ p["in_weight"].T + p["in_bias"]  # (N, T, 3D)
    qkv = qkv.reshape(nb, t, 3, h, d // h).transpose(2, 0, 3, 1, 4)  # (3, N, H, T, Dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // h), axis=-1)
    y = (att @ v).transpose(0, 2, 1, 3).reshape(nb, t, d)
    return y @ p["out_weight"].T + p["out_bias"]


@OPS.register("upsample")
def upsample(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    sh, sw = n.attrs["scale_factor"]
    return xs[0].repeat(sh, axis=2).repeat(sw, axis=3)


@OPS.register("lstm")
def lstm(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    x, hs = xs[0], n.attrs["hidden_size"]
    nb, t, _ = x.shape
    h = np.zeros((nb, hs))
    c = np.zeros((nb, hs))
    xw = x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"]  # (N, T, 4H)
    seq = []
    for step in range(t):
        z = xw[:, step] + h @ p["weight_hh"].T
        i, f, g, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        seq.append(h)
    return np.stack(seq, axis=1) if n.attrs["return_sequences"] else h


@OPS.register("embedding")
def embedding(xs: list[np.ndarray], p: Params, n: ResolvedNode) -> np.ndarray:
    return p["weight"][xs[0]]  # ids in [0, V): Model.to_device checks them on the host
