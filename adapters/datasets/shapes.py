"""``shapes``: a procedurally generated detection dataset in the real COCO layout.

On first use, the generator writes (into the cache, ``$DLBENCH_CACHE/shapes/<key>/``, or into
``root``)::

    annotations/instances_train.json   annotations/instances_val.json
    train/000000000001.jpg ...         val/000000000001.jpg ...

and the dataset is then read back by the COCO adapter (:class:`~dlbench.adapters.datasets.coco.
CocoDetection`), so the loader, ``dlbench data check shapes`` and the evaluator run their real
COCO code paths. No download.

Each image (width and height 192..448) has a textured background (a smooth colour field plus
stripes or checks) and 1..10 objects from four categories (circle, square, triangle, diamond),
each filled or outlined, in a random colour; later objects occlude earlier ones. Object sizes are
drawn so that all three COCO size classes occur (area < 32², 32²..96², > 96²). A ground-truth
box is the bounding box of the object's *visible* pixels and its ``area`` their count; an object
less than 30 % visible (or under 12 pixels) is not annotated and does not exist as far as the
evaluation knows (it stays in the image as clutter). Segmentations are the visible bounding box
as a polygon.

Everything follows from ``seed`` (each split and each image has its own stream, spawned from
``SeedSequence([seed, split, version])``): the same seed gives byte-identical JPEG files and JSON on every machine with the same
Pillow/libjpeg; another seed gives another dataset. The data is *generated*: ``info.source``
starts with ``"generated"``, and the JSON ``info`` says so. It is meaningful for accuracy (a model
can learn it), unlike ``synthetic``.

Example:
    >>> from dlbench import datasets
    >>> ds = datasets.load("shapes", split="val", num_images=8, image_size=320)  # doctest: +SKIP
    >>> ds.info.num_classes, ds.info.source.startswith("generated")  # doctest: +SKIP
    (4, True)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.adapters.datasets.coco import CocoDetection
from dlbench.data.cache import cache_dir
from dlbench.errors import ConfigError

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "ShapesDataset", "generate"]

GENERATOR_VERSION = 1
CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "circle"),
    (2, "square"),
    (3, "triangle"),
    (4, "diamond"),
)
DEFAULT_NUM_IMAGES = {"train": 512, "val": 128}
JPEG_QUALITY = 92
MIN_VISIBLE = 0.3
MIN_PIXELS = 12
_SIZE_CLASSES = ((8, 30), (34, 92), (100, 190))  # object side ranges: small, medium, large


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured uint8 (h, w, 3) background: smooth colour noise + stripes or checks."""
    grid = rng.uniform(40, 215, (4, 5, 3))
    ys = np.linspace(0, grid.shape[0] - 1, h)
    xs = np.linspace(0, grid.shape[1] - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, grid.shape[0] - 2)
    x0 = np.floor(xs).astype(int).clip(0, grid.shape[1] - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    img = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy
    period = int(rng.integers(6, 24))
    yy, xx = np.mgrid[0:h, 0:w]
    kind = int(rng.integers(0, 3))
    if kind == 0:
        angle = rng.uniform(0, np.pi)
        pattern = ((xx * np.cos(angle) + yy * np.sin(angle)) // period) % 2
    elif kind == 1:
        pattern = ((xx // period) + (yy // period)) % 2
    else:
        pattern = np.zeros((h, w))
    img = img + (pattern[..., None] * 2 - 1) * rng.uniform(5, 25)
    img = img + rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _shape_polygon(cat: str, cx: float, cy: float, side: float, angle: float) -> list[tuple]:
    r = side / 2
    if cat == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif cat == "triangle":
        pts = [(0, -r), (r, r * 0.8), (-r, r * 0.8)]
    else:  # diamond: a rhombus, narrower than tall
        pts = [(0, -r), (r * 0.65, 0), (0, r), (-r * 0.65, 0)]
    c, s = np.cos(angle), np.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _draw_object(rng: np.random.Generator, h: int, w: int) -> dict[str, Any]:
    from PIL import Image, ImageDraw

    cat_id, cat = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
    lo, hi = _SIZE_CLASSES[int(rng.choice(3, p=[0.4, 0.35, 0.25]))]
    side = float(rng.uniform(lo, min(hi, 0.9 * min(h, w))))
    cx = float(rng.uniform(side * 0.3, w - side * 0.3))
    cy = float(rng.uniform(side * 0.3, h - side * 0.3))
    filled = bool(rng.random() < 0.6)
    width = max(2, int(round(side * rng.uniform(0.08, 0.18))))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    angle = float(rng.uniform(0, 2 * np.pi)) if cat != "circle" else 0.0
    mask = Image.new("L", (w, h), 0)
    paint = Image.new("L", (w, h), 0)
    dm, dp = ImageDraw.Draw(mask), ImageDraw.Draw(paint)
    if cat == "circle":
        box = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]
        dm.ellipse(box, fill=255)
        dp.ellipse(box, fill=255) if filled else dp.ellipse(box, outline=255, width=width)
    else:
        poly = _shape_polygon(cat, cx, cy, side, angle)
        dm.polygon(poly, fill=255)
        if filled:
            dp.polygon(poly, fill=255)
        else:
            dp.line([*poly, poly[0]], fill=255, width=width, joint="curve")
    return {
        "category_id": cat_id,
        # the object's extent (outlined shapes own their interior) and the pixels painted
        "mask": np.asarray(mask) > 0,
        "paint": np.asarray(paint) > 0,
        "colour": np.asarray(colour, np.uint8),
    }


def _image(seed_seq: np.random.SeedSequence) -> tuple[np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed_seq)
    w, h = (int(v) for v in rng.integers(192, 449, 2))
    img = _background(rng, h, w)
    objects = [_draw_object(rng, h, w) for _ in range(int(rng.integers(1, 11)))]
    visible = []
    for obj in objects:
        img[obj["paint"]] = obj["colour"]
        for earlier in visible:
            earlier &= ~obj["paint"]  # the interior of an outlined shape hides nothing
        visible.append(obj["mask"].copy())
    anns = []
    for obj, vis in zip(objects, visible):
        full = int(obj["mask"].sum())
        n = int(vis.sum())
        if n < MIN_PIXELS or full == 0 or n < MIN_VISIBLE * full:
            continue
        ys, xs = np.nonzero(vis)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        anns.append(
            {
                "category_id": obj["category_id"],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": n,
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                "iscrowd": 0,
            }
        )
    return img, anns


def _jpeg(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _complete(root: Path) -> bool:
    return all((root / "annotations" / f"instances_{s}.json").is_file() for s in ("train", "val"))


def generate(
    root: str | Path,
    seed: int = 0,
    num_images: dict[str, int] | None = None,
    *,
    replace: bool = True,
) -> Path:
    """Write the dataset (both splits) under ``root``; returns ``root``.

    Files are written into a temporary folder beside ``root`` and moved into place, so an
    interrupted run leaves nothing half-written behind. ``root`` must be absent, empty, or a
    folder this generator wrote (it is then replaced); anything else is refused.

    With ``replace=False`` a complete dataset that appeared at ``root`` meanwhile (another
    process generating the same one: the bytes are identical) is kept and the new copy dropped.

    Raises:
        ConfigError: when ``root`` holds files this generator did not write.
    """
    counts = {**DEFAULT_NUM_IMAGES, **(num_images or {})}
    for split, n in counts.items():
        _positive(f"num_images[{split!r}]", n)
    root = Path(root).expanduser()
    if root.exists() and not _replaceable(root):
        raise ConfigError(
            f"Expected an empty folder or one written by the shapes generator to generate into. "
            f"Received: {root}, which holds other files; pass another root"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shapes-", dir=root.parent))
    try:
        (tmp / "annotations").mkdir()
        for k, split in enumerate(("train", "val")):
            (tmp / split).mkdir()
            seqs = np.random.SeedSequence([int(seed), k, GENERATOR_VERSION]).spawn(counts[split])
            images, annotations = [], []
            for i, ss in enumerate(seqs, start=1):
                img, anns = _image(ss)
                name = f"{i:012d}.jpg"
                (tmp / split / name).write_bytes(_jpeg(img))
                images.append(
                    {"id": i, "file_name": name, "width": img.shape[1], "height": img.shape[0]}
                )
                for a in anns:
                    annotations.append({"id": len(annotations) + 1, "image_id": i, **a})
            doc = {
                "info": {
                    "description": "dlbench shapes: procedurally generated detection data",
                    "generated": True,
                    "generator": "dlbench.adapters.datasets.shapes",
                    "generator_version": GENERATOR_VERSION,
                    "seed": int(seed),
                    "split": split,
                },
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [
                    {"id": i, "name": n, "supercategory": "shape"} for i, n in CATEGORIES
                ],
            }
            text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
            (tmp / "annotations" / f"instances_{split}.json").write_text(text, encoding="utf-8")
        if root.exists() and not replace and _complete(root):
            shutil.rmtree(tmp, ignore_errors=True)
            return root
        if root.exists():
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:
            if replace or not _complete(root):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _replaceable(root: Path) -> bool:
    """True for an empty folder or one holding only this generator's files."""
    if not root.is_dir():
        return False
    entries = {p.name for p in root.iterdir()}
    if not entries:
        return True
    if not entries <= {"annotations", "train", "val"}:
        return False
    for ann in (root / "annotations").glob("*.json"):
        try:
            info = json.loads(ann.read_text(encoding="utf-8")).get("info", {})
        except (OSError, ValueError, AttributeError):
            return False
        if info.get("generator") != "dlbench.adapters.datasets.shapes":
            return False
    return True


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Expected `{name}` to be a positive int. Received: {name}={value!r}")
    return int(value)


class ShapesDataset(CocoDetection):
    """The generated ``shapes`` detection dataset, read through the COCO adapter.

    Args:
        root: Where the files are (or are generated); default a cache folder named after the
            generator version, the seed and the image counts.
        split: ``"train"`` or ``"val"`` (``"test"`` means ``"val"``).
        seed: Generation seed.
        num_images: Images in this split (default 512 train, 128 val).
        num_train_images: Images in the train split when loading val (they are generated
            together; default 512).
        image_size, limit, fill, mean, std, strict: as for
            :class:`~dlbench.adapters.datasets.coco.CocoDetection`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "val",
        *,
        seed: int = 0,
        num_images: int | None = None,
        num_train_images: int | None = None,
        image_size: int = 320,
        limit: int | None = None,
        fill: int = 114,
        mean: Any = None,
        std: Any = None,
        strict: bool = True,
        download: bool = False,
    ) -> None:
        if split == "test":
            split = "val"
        if split not in ("train", "val"):
            raise ConfigError(
                f"Expected `split` to be 'train' or 'val' for shapes. Received: split={split!r}"
            )
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"Expected `seed` to be a non-negative int. Received: seed={seed!r}")
        counts = dict(DEFAULT_NUM_IMAGES)
        if num_images is not None:
            counts[split] = _positive("num_images", num_images)
        if num_train_images is not None:
            counts["train"] = _positive("num_train_images", num_train_images)
        key = f"v{GENERATOR_VERSION}-seed{int(seed)}-train{counts['train']}-val{counts['val']}"
        folder = Path(root).expanduser() if root is not None else cache_dir("shapes", key)
        ann = folder / "annotations" / f"instances_{split}.json"
        if not ann.is_file():
            generate(folder, int(seed), counts, replace=False)
        self.seed = int(seed)
        super().__init__(
            folder,
            split,
            annotation_file=ann,
            image_dir=folder / split,
            image_size=image_size,
            limit=limit,
            fill=fill,
            mean=mean,
            std=std,
            strict=strict,
        )
        self._info = replace(
            self._info,
            name="shapes",
            source=(
                f"generated: dlbench shapes v{GENERATOR_VERSION}, seed={self.seed}, "
                f"{counts[split]} {split} images ({ann})"
            ),
            transform={**self._info.transform, "generated": True, "seed": self.seed},
        )
