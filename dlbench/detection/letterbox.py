"""Letterbox (resize keeping the aspect ratio, pad to the model input) and its inverse for boxes.

Follows ultralytics' ``LetterBox`` / ``scale_boxes`` (REFERENCE-2): ``r = min(H/h0, W/w0)``, the
image resized to ``(round(w0*r), round(h0*r))`` with bilinear interpolation (half-pixel centres,
as OpenCV's ``INTER_LINEAR``), padded with ``fill`` (114): ``left = round(dw - 0.1)``,
``top = round(dh - 0.1)`` where ``dw, dh`` are half the padding. Boxes go back to original pixels
with ``x = (x - left) / r``, ``y = (y - top) / r`` and are clipped to the original image.

Example:
    >>> p = letterbox_params((480, 640), 320)
    >>> p.scale, p.left, p.top, p.new_size
    (0.5, 0, 40, (240, 320))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.errors import ConfigError, DataError

__all__ = [
    "LetterboxParams",
    "letterbox",
    "letterbox_params",
    "resize_bilinear",
    "unletterbox_boxes",
]


@dataclass(frozen=True)
class LetterboxParams:
    """``letterboxed = original * scale + (left, top)``.

    Attributes:
        orig_size: ``(h0, w0)`` of the original image.
        size: ``(H, W)`` of the model input.
        scale: Resize factor ``r``.
        new_size: ``(h, w)`` of the resized image before padding.
        left: Padding columns on the left.
        top: Padding rows on top.
    """

    orig_size: tuple[int, int]
    size: tuple[int, int]
    scale: float
    new_size: tuple[int, int]
    left: int
    top: int

    def to_dict(self) -> dict:
        return {
            "orig_size": list(self.orig_size),
            "size": list(self.size),
            "scale": self.scale,
            "new_size": list(self.new_size),
            "left": self.left,
            "top": self.top,
        }


def _hw(size: int | Sequence[int], what: str) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in hw):
        raise ConfigError(f"Expected `{what}` to be a positive int or (h, w). Received: {size!r}")
    return int(hw[0]), int(hw[1])


def letterbox_params(orig_size: Sequence[int], size: int | Sequence[int]) -> LetterboxParams:
    """How an ``orig_size = (h0, w0)`` image is letterboxed into ``size`` (int or ``(H, W)``)."""
    h0, w0 = _hw(tuple(orig_size), "orig_size")
    hh, ww = _hw(size, "size")
    r = min(hh / h0, ww / w0)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    new_w, new_h = max(1, min(ww, new_w)), max(1, min(hh, new_h))
    dw, dh = (ww - new_w) / 2, (hh - new_h) / 2
    return LetterboxParams(
        (h0, w0), (hh, ww), float(r), (new_h, new_w), int(round(dw - 0.1)), int(round(dh - 0.1))
    )


def resize_bilinear(image: np.ndarray, new_size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(h, w, c)`` image to ``new_size = (h', w')`` (half-pixel centres),
    float64 output."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[:2]
    nh, nw = new_size

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        x = np.clip(x, 0.0, n_in - 1)
        i0 = np.floor(x).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, x - i0

    y0, y1, fy = coords(nh, h)
    x0, x1, fx = coords(nw, w)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def letterbox(
    image: np.ndarray, size: int | Sequence[int], fill: int = 114
) -> tuple[np.ndarray, LetterboxParams]:
    """Letterbox an ``(h0, w0, 3)`` uint8 image into ``size``; returns uint8 ``(H, W, 3)`` + params.

    Raises:
        DataError: when the image is not a non-empty ``(h, w, c)`` array.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise DataError(f"Expected an image of shape (h, w, c). Received: shape {img.shape}")
    p = letterbox_params(img.shape[:2], size)
    out = np.full((*p.size, img.shape[2]), fill, dtype=np.uint8)
    if p.new_size == tuple(img.shape[:2]):
        resized = img.astype(np.uint8)
    else:
        resized = np.clip(np.rint(resize_bilinear(img, p.new_size)), 0, 255).astype(np.uint8)
    out[p.top : p.top + p.new_size[0], p.left : p.left + p.new_size[1]] = resized
    return out, p


def _affine(params: LetterboxParams | Mapping[str, Any]) -> tuple[float, float, float, tuple]:
    """``(scale, left, top, (h0, w0) or None)`` from our params or a dataset target's dict
    (``scale``, ``pad_x``, ``pad_y``, ``orig_width``, ``orig_height``, as the COCO adapter's)."""
    if isinstance(params, LetterboxParams):
        return params.scale, float(params.left), float(params.top), params.orig_size
    try:
        scale, px, py = float(params["scale"]), float(params["pad_x"]), float(params["pad_y"])
    except (KeyError, TypeError, ValueError):
        raise DataError(
            "Expected letterbox parameters (LetterboxParams, or a mapping with scale, pad_x, "
            f"pad_y). Received: {params!r}"
        ) from None
    if not scale > 0:
        raise DataError(f"Expected a positive letterbox scale. Received: scale={scale!r}")
    size = None
    if "orig_height" in params and "orig_width" in params:
        size = (int(params["orig_height"]), int(params["orig_width"]))
    return scale, px, py, size


def unletterbox_boxes(
    boxes: np.ndarray, params: LetterboxParams | Mapping[str, Any], clip: bool = True
) -> np.ndarray:
    """xyxy boxes in letterboxed input pixels -> original image pixels (float64).

    ``params`` is a :class:`LetterboxParams` or a dataset target's dict (``scale``, ``pad_x``,
    ``pad_y`` and, for clipping, ``orig_width``/``orig_height``), so the boxes go back through
    exactly the letterbox the dataset applied.
    """
    scale, left, top, size = _affine(params)
    b = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
    b[:, 0::2] = (b[:, 0::2] - left) / scale
    b[:, 1::2] = (b[:, 1::2] - top) / scale
    if clip and size is not None:
        h0, w0 = size
        b[:, 0::2] = np.clip(b[:, 0::2], 0.0, float(w0))
        b[:, 1::2] = np.clip(b[:, 1::2], 0.0, float(h0))
    return b


def letterbox_boxes(boxes: np.ndarray, params: LetterboxParams | Mapping[str, Any]) -> np.ndarray:
    """Original-pixel xyxy boxes -> letterboxed input pixels (inverse of :func:`unletterbox_boxes`)."""
    scale, left, top, _ = _affine(params)
    b = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
    b[:, 0::2] = b[:, 0::2] * scale + left
    b[:, 1::2] = b[:, 1::2] * scale + top
    return b
