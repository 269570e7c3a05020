"""Image decoding and geometric transforms with Pillow and NumPy only.

- :func:`decode_rgb` opens any Pillow-readable file as uint8 RGB (H, W, 3): grayscale, palette,
  CMYK, 16-bit and alpha images are converted; an undecodable file is a
  :class:`~dlbench.errors.DataError` naming it.
- :func:`letterbox` resizes keeping the aspect ratio and pads to a square; its
  :class:`LetterboxParams` record everything needed to map boxes back to the original pixels
  exactly (:func:`boxes_to_letterbox`, :func:`boxes_from_letterbox`).
- :func:`resize_center_crop` is the standard ImageNet evaluation transform (resize the shorter
  side to 256, centre-crop 224).

Resource limit: an image file declares its size in its header, and decoding allocates what it
declares. Images larger than :data:`MAX_IMAGE_PIXELS` (Pillow's own default limit, about
9459 x 9459, a 256 MiB RGBA buffer; dataset images are far smaller) are refused with a
:class:`~dlbench.errors.DataError` from the header, before decoding (a PNG declaring
30000 x 30000 pixels never allocates 2.7 GB). Where a dataset declares each image's size (COCO),
the header must match it before the pixels are decoded.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dlbench.errors import DataError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)


MAX_IMAGE_PIXELS = 89_478_485
"""Largest image (width x height) any loader decodes: Pillow's default limit."""

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def _check_pixels(im: Image.Image, path: str | Path) -> None:
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(
            f"Refused image {path}: its header declares {w}x{h} = {w * h:,} pixels. Expected "
            f"at most {MAX_IMAGE_PIXELS:,} pixels (Pillow's default limit, a 256 MiB RGBA "
            "buffer; no dataset image is that large). This looks like a decompression bomb."
        )


def _open(path: str | Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def open_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` as an RGB Pillow image.

    Raises:
        DataError: The file is missing, does not decode as an image, or declares more than
            :data:`MAX_IMAGE_PIXELS` pixels (refused before decoding).
    """
    try:
        with _open(path) as im:
            _check_pixels(im, path)
            im.load()
            return to_rgb(im)
    except FileNotFoundError:
        raise DataError(f"Image file not found: {path}") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"Refused image {path}: {e}") from None
    except _DECODE_ERRORS as e:
        raise DataError(
            f"Could not decode image {path}: expected a readable image file, received a "
            f"corrupt or unsupported one ({type(e).__name__}: {e})."
        ) from None


def verify_image(path: str | Path) -> tuple[int, int]:
    """Decode ``path`` fully (within :data:`MAX_IMAGE_PIXELS`) and return its (width, height).

    Raises:
        DataError: As :func:`open_rgb`.
    """
    try:
        with _open(path) as im:
            _check_pixels(im, path)
            im.load()
            return im.size
    except FileNotFoundError:
        raise DataError(f"Image file not found: {path}") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"Refused image {path}: {e}") from None
    except _DECODE_ERRORS as e:
        raise DataError(
            f"Could not decode image {path}: {type(e).__name__}: {e}. Expected a readable "
            "image file."
        ) from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB.

    CMYK, grayscale and palette images use Pillow's conversions; alpha is dropped (as
    torchvision and keras do); 16-bit and float grayscale are scaled to 8 bits.
    """
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        im = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        im = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im.convert("RGB")


def decode_rgb(path: str | Path) -> np.ndarray:
    """The image at ``path`` as uint8 RGB, shape (H, W, 3)."""
    return np.asarray(open_rgb(path), dtype=np.uint8)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) read from the file header only (no full decode)."""
    try:
        with _open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(f"Image file not found: {path}") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"Refused image {path}: {e}") from None
    except _DECODE_ERRORS as e:
        raise DataError(
            f"Could not decode image {path}: expected a readable image file, received one "
            f"whose header is corrupt or unsupported ({type(e).__name__}: {e})."
        ) from None


@dataclass(frozen=True)
class LetterboxParams:
    """How an image was letterboxed: ``letterboxed = original * scale + pad``.

    Attributes:
        scale: Resize factor applied to both axes.
        pad_x: Left padding in letterboxed pixels.
        pad_y: Top padding in letterboxed pixels.
        orig_width: Original image width in pixels.
        orig_height: Original image height in pixels.
        size: Side of the square output.
    """

    scale: float
    pad_x: float
    pad_y: float
    orig_width: int
    orig_height: int
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def letterbox_params(width: int, height: int, size: int) -> LetterboxParams:
    """The parameters :func:`letterbox` uses for an image of ``width`` x ``height``.

    The resized image is ``width * scale`` by ``height * scale`` (one side exactly ``size``,
    the other rounded to whole pixels), centred with padding on both sides.
    """
    if width < 1 or height < 1:
        raise DataError(f"Expected a positive image size. Received: {width}x{height}")
    scale = min(size / width, size / height)
    new_w, new_h = _resized(width, height, scale, size)
    return LetterboxParams(
        scale=scale,
        pad_x=float((size - new_w) // 2),
        pad_y=float((size - new_h) // 2),
        orig_width=int(width),
        orig_height=int(height),
        size=int(size),
    )


def _resized(width: int, height: int, scale: float, size: int) -> tuple[int, int]:
    return (
        max(1, min(size, int(round(width * scale)))),
        max(1, min(size, int(round(height * scale)))),
    )


def letterbox(im: Image.Image, size: int, *, fill: int = 114) -> tuple[np.ndarray, LetterboxParams]:
    """Resize ``im`` (RGB) keeping its aspect ratio and pad it to ``size`` x ``size``.

    Returns:
        The uint8 HWC array and the :class:`LetterboxParams` to map boxes back.
    """
    p = letterbox_params(im.width, im.height, size)
    new_w, new_h = _resized(im.width, im.height, p.scale, size)
    resized = (
        im.resize((new_w, new_h), Image.Resampling.BILINEAR) if (new_w, new_h) != im.size else im
    )
    out = np.full((size, size, 3), fill, dtype=np.uint8)
    x0, y0 = int(p.pad_x), int(p.pad_y)
    out[y0 : y0 + new_h, x0 : x0 + new_w] = np.asarray(resized, dtype=np.uint8)
    return out, p


def _params(p: LetterboxParams | dict[str, Any]) -> tuple[float, float, float]:
    if isinstance(p, LetterboxParams):
        return p.scale, p.pad_x, p.pad_y
    return float(p["scale"]), float(p["pad_x"]), float(p["pad_y"])


def boxes_to_letterbox(boxes: np.ndarray, params: LetterboxParams | dict[str, Any]) -> np.ndarray:
    """Map xywh boxes from original pixels to letterboxed pixels (float64)."""
    scale, px, py = _params(params)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 0] = b[:, 0] * scale + px
    b[:, 1] = b[:, 1] * scale + py
    b[:, 2:] *= scale
    return b


def boxes_from_letterbox(
    boxes: np.ndarray, params: LetterboxParams | dict[str, Any], *, clip: bool = False
) -> np.ndarray:
    """Map xywh boxes from letterboxed pixels back to original pixels (float64).

    The exact inverse of :func:`boxes_to_letterbox` (up to float rounding). With ``clip``, boxes
    are clipped to the original image, which needs ``orig_width``/``orig_height`` in ``params``.
    """
    scale, px, py = _params(params)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 0] = (b[:, 0] - px) / scale
    b[:, 1] = (b[:, 1] - py) / scale
    b[:, 2:] /= scale
    if clip:
        w = params.orig_width if isinstance(params, LetterboxParams) else params["orig_width"]
        h = params.orig_height if isinstance(params, LetterboxParams) else params["orig_height"]
        x1 = np.clip(b[:, 0], 0, w)
        y1 = np.clip(b[:, 1], 0, h)
        x2 = np.clip(b[:, 0] + b[:, 2], 0, w)
        y2 = np.clip(b[:, 1] + b[:, 3], 0, h)
        b = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return b


def resize_center_crop(im: Image.Image, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Resize the shorter side to ``resize`` (bilinear), then centre-crop ``crop`` x ``crop``.

    Matches torchvision's ``Resize(256)`` + ``CenterCrop(224)``: the longer side is
    ``int(resize * long / short)`` and the crop offsets are ``round((size - crop) / 2)``.
    """
    w, h = im.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if new_w < crop or new_h < crop:  # pad like torchvision when the crop is larger
        im = ImageOps.pad(im, (max(new_w, crop), max(new_h, crop)), color=(0, 0, 0))
        new_w, new_h = im.size
    left = int(round((new_w - crop) / 2.0))
    top = int(round((new_h - crop) / 2.0))
    return np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def normalize_nchw(hwc: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 (N, H, W, 3) or (H, W, 3) -> float32 NCHW ``(x / 255 - mean) / std``."""
    x = np.asarray(hwc)
    if x.ndim == 3:
        x = x[None]
    x = x.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1.0 / 255.0)
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - m) / s)
