"""Padding and pooling geometry shared by the backends (pooling lowered to padded VALID windows)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _axis_divisor(size: int, k: int, s: int, p: int, out: int, include_pad: bool) -> np.ndarray:
    d = np.empty(out)
    for i in range(out):
        start = i * s - p
        end = min(start + k, size + p)
        pool = end - start
        if not include_pad:
            pool = min(end, size) - max(start, 0)
        d[i] = pool
    return d


def avg_pool_divisor(
    in_hw: tuple[int, int], attrs: dict[str, Any], out_hw: tuple[int, int]
) -> np.ndarray:
    """(OH, OW) float64 divisors of average pooling, PyTorch semantics.

    With ``count_include_pad`` the explicit padding counts but the extra ceil-mode padding does
    not; without it only real input pixels count. Backends compute ``sum_pool / divisor``.
    """
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel_size"], attrs["stride"], attrs["padding"]
    inc = attrs.get("count_include_pad", True)
    dh = _axis_divisor(in_hw[0], kh, sh, ph, out_hw[0], inc)
    dw = _axis_divisor(in_hw[1], kw, sw, pw, out_hw[1], inc)
    return np.outer(dh, dw)


def pad_pairs(pads: list[int]) -> list[tuple[int, int]]:
    """A ``pad`` node's flat ``pads`` as ``(before, after)`` pairs, one per non-batch axis."""
    return [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)]
