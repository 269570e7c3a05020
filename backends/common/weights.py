"""Weight and layout transforms shared by the backends, each with its inverse where it has one.

A :class:`~dlbench.model.spec.ModelSpec` holds its weights in one canonical layout (NCHW
activations, OIHW convolution filters, ``(out, in)`` dense weights, PyTorch's LSTM gate order).
Backends whose framework wants another layout convert with these functions, once, at build
time, and convert back with the inverse when they hand weights back (a trainer's export).
Everything here is framework-free NumPy; the permutations are exported for in-graph use.

Batch-norm folding is done in float64 so a float32 backend starts from the exact folded values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: axis permutations of 4-D activations (usable with any framework's transpose)
NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# -- batch norm -----------------------------------------------------------------------------------


def fold_batch_norm(
    weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as one affine map: ``(scale, shift)``, float64.

    ``(x - mean) / sqrt(var + eps) * weight + bias == x * scale + shift``.
    """
    scale = _f64(weight) / np.sqrt(_f64(var) + eps)
    return scale, _f64(bias) - _f64(mean) * scale


# -- activations ----------------------------------------------------------------------------------


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """A 4-D NCHW batch in NHWC order (other ranks unchanged; a view, not a copy)."""
    return x.transpose(NCHW_TO_NHWC) if x.ndim == 4 else x


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """A 4-D NHWC batch in NCHW order (other ranks unchanged; a view, not a copy)."""
    return x.transpose(NHWC_TO_NCHW) if x.ndim == 4 else x


# -- convolution filters --------------------------------------------------------------------------


def is_depthwise(weight_shape: tuple[int, ...], groups: int) -> bool:
    """An OIHW filter of a grouped convolution with one input channel per group."""
    return groups > 1 and weight_shape[1] == 1


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO (grouped filters keep their groups stacked on the last axis)."""
    return w.transpose(2, 3, 1, 0)


def hwio_to_oihw(w: np.ndarray) -> np.ndarray:
    """HWIO -> OIHW."""
    return w.transpose(3, 2, 0, 1)


def oihw_to_depthwise(w: np.ndarray, groups: int) -> np.ndarray:
    """A depthwise OIHW filter ``(C*M, 1, KH, KW)`` -> ``(KH, KW, C, M)`` (``groups == C``)."""
    o, _, kh, kw = w.shape
    return w.reshape(groups, o // groups, kh, kw).transpose(2, 3, 0, 1)


def depthwise_to_oihw(w: np.ndarray) -> np.ndarray:
    """``(KH, KW, C, M)`` -> the depthwise OIHW filter ``(C*M, 1, KH, KW)``."""
    kh, kw, c, m = w.shape
    return w.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


def conv_filter_layout(
    weight_shape: tuple[int, ...], groups: int
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """``(to_native, to_canonical)`` of a channels-last framework's filter for this conv:
    ``(KH, KW, C, M)`` for a depthwise one, HWIO otherwise."""
    if is_depthwise(weight_shape, groups):
        return (lambda w: oihw_to_depthwise(w, groups)), depthwise_to_oihw
    return oihw_to_hwio, hwio_to_oihw


# -- dense and recurrent weights --------------------------------------------------------------------


def dense_to_kernel(w: np.ndarray) -> np.ndarray:
    """A dense weight ``(out, in)`` -> a kernel ``(in, out)`` (``x @ kernel``)."""
    return w.T


def kernel_to_dense(k: np.ndarray) -> np.ndarray:
    """A kernel ``(in, out)`` -> a dense weight ``(out, in)``."""
    return k.T


def sum_lstm_bias(bias_ih: np.ndarray, bias_hh: np.ndarray) -> np.ndarray:
    """PyTorch's two LSTM biases as the single bias most frameworks keep (float64)."""
    return _f64(bias_ih) + bias_hh


def gates_ifgo_to_iofc(a: np.ndarray) -> np.ndarray:
    """LSTM gate blocks along axis 0, PyTorch order (i, f, g, o) -> ONNX order (i, o, f, c)."""
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def gates_iofc_to_ifgo(a: np.ndarray) -> np.ndarray:
    """LSTM gate blocks along axis 0, ONNX order (i, o, f, c) -> PyTorch order (i, f, g, o)."""
    i, o, f, c = np.split(a, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)
