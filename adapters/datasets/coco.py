"""COCO detection (2017 layout): ``annotations/instances_{split}2017.json`` + ``{split}2017/``.

Images are decoded with Pillow (grayscale, CMYK, palette converted to RGB), letterboxed to a
fixed square (``image_size``, default 640, pad value 114) so batches stack, and scaled to
``[0, 1]`` (or normalised with ``mean``/``std`` when given): float32 NCHW.

Targets are one dict per image, boxes in *original* pixel coordinates (COCO xywh)::

    {"image_id", "file_name", "boxes" (k, 4) float64, "labels" (k,) int64 contiguous,
     "category_ids" (k,) int64, "iscrowd" (k,) int64, "area" (k,) float64,
     "annotation_ids" (k,) int64,
     "scale", "pad_x", "pad_y", "orig_width", "orig_height", "size"}

``letterboxed = original * scale + pad``; :func:`boxes_to_letterbox` and
:func:`boxes_from_letterbox` map between the two exactly. Category ids (80 used out of 1..90)
map to contiguous labels ``0..K-1`` in increasing id order and back through
:class:`CategoryMap` (``dataset.categories``).

COCO 2017's test split has no public labels, so ``split="test"`` (the default of
:func:`dlbench.data.load`) means the held-out evaluation split, ``val2017``.

Example:
    >>> from dlbench import datasets
    >>> ds = datasets.load("coco", root="~/data/coco", split="val", limit=500)  # doctest: +SKIP
    >>> batch = ds.get_batch([0, 1])  # doctest: +SKIP
    >>> batch.targets[0]["boxes"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.adapters.datasets._image import (
    LetterboxParams,
    boxes_from_letterbox,
    boxes_to_letterbox,
    image_size,
    letterbox,
    open_rgb,
)
from dlbench.data.cache import cache_dir
from dlbench.data.coco_format import DATASET_FIELDS, CocoInstances, read_json, validate_instances
from dlbench.data.dataset import Batch, DataNotFoundError, Dataset, DatasetInfo
from dlbench.errors import ConfigError, DataError

__all__ = [
    "COCO_CATEGORY_IDS",
    "CategoryMap",
    "CocoDetection",
    "LetterboxParams",
    "boxes_from_letterbox",
    "boxes_to_letterbox",
    "parse_instances",
]

COCO_CATEGORY_IDS: tuple[int, ...] = tuple(
    i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
)
"""The 80 category ids COCO 2017 uses, in increasing order."""

REQUIRED_FIELDS = DATASET_FIELDS
"""Fields every entry must have (see :mod:`dlbench.data.coco_format`)."""


class CategoryMap:
    """COCO category ids <-> contiguous labels ``0..K-1`` (increasing id order).

    Example:
        >>> m = CategoryMap(COCO_CATEGORY_IDS)
        >>> int(m.to_label([1, 90])[1]), int(m.to_category_id([79])[0])
        (79, 90)
    """

    def __init__(self, category_ids: Sequence[int], names: Sequence[str] = ()) -> None:
        ids = sorted(int(i) for i in category_ids)
        if len(set(ids)) != len(ids):
            raise DataError(f"Expected unique category ids. Received duplicates in {ids}")
        self.category_ids = np.asarray(ids, dtype=np.int64)
        self.names = tuple(names)
        size = (max(ids) + 1) if ids else 1
        self._lut = np.full(size, -1, dtype=np.int64)
        self._lut[self.category_ids] = np.arange(len(ids))

    def __len__(self) -> int:
        return len(self.category_ids)

    def to_label(self, category_ids: Any, *, strict: bool = True) -> np.ndarray:
        """Contiguous labels of ``category_ids``; unknown ids raise (or give -1 if not strict)."""
        c = np.asarray(category_ids, dtype=np.int64)
        inside = (c >= 0) & (c < len(self._lut))
        out = np.full(c.shape, -1, dtype=np.int64)
        out[inside] = self._lut[c[inside]]
        if strict and (out < 0).any():
            bad = sorted(set(c[out < 0].tolist()))
            raise DataError(
                f"Unknown COCO category id(s) {bad}. Expected one of {self.category_ids.tolist()}"
            )
        return out

    def to_category_id(self, labels: Any) -> np.ndarray:
        """COCO category ids of contiguous ``labels`` (0..K-1)."""
        lab = np.asarray(labels, dtype=np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= len(self.category_ids)):
            raise DataError(
                f"Expected labels in [0, {len(self.category_ids)}). Received min {lab.min()}, "
                f"max {lab.max()}"
            )
        return self.category_ids[lab]


def parse_instances(data: Any, source: str, *, strict: bool = True) -> CocoInstances:
    """Validate a COCO instances dict with the one COCO format validator.

    :func:`dlbench.data.coco_format.validate_instances` with :data:`REQUIRED_FIELDS`; with
    ``strict``, reference problems (duplicate ids, annotations of unknown images or
    categories) raise too.

    Raises:
        DataError: naming ``source``, saying what was expected and what was received.
    """
    inst = validate_instances(data, source, fields=DATASET_FIELDS)
    if strict:
        inst.raise_problems()
    return inst


class CocoDetection(Dataset):
    """COCO object detection, read from the official 2017 files.

    Args:
        root: Folder with ``annotations/`` and ``{split}2017/``; default ``$DLBENCH_CACHE/coco``.
        split: ``"val"`` or ``"train"`` (``"test"`` is read as ``"val"``, see module docs).
        annotation_file: Override the instances JSON path.
        image_dir: Override the image folder.
        image_size: Side of the letterboxed square.
        limit: Keep only the first ``limit`` images in increasing image-id order (a
            deterministic subset); the ground truth is cut to match.
        fill: Padding value (0..255).
        mean: Per-channel mean in [0, 1] units to subtract after scaling, or None.
        std: Per-channel std to divide by, or None.
        year: The release year in file names.
        strict: Refuse a file whose annotations reference images or categories it does not
            define, or whose ids repeat (default). ``False`` loads it anyway, so the data
            check can list every such problem; the format itself (field types and values) is
            validated either way.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "val",
        *,
        annotation_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        image_size: int = 640,
        limit: int | None = None,
        fill: int = 114,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        year: int = 2017,
        download: bool = False,
        strict: bool = True,
    ) -> None:
        if split == "test":
            split = "val"
        if split not in ("train", "val"):
            raise ConfigError(
                f"Expected `split` to be 'train' or 'val' for coco. Received: split={split!r}"
            )
        if not isinstance(image_size, int) or image_size < 1:
            raise ConfigError(
                f"Expected `image_size` to be a positive int. Received: image_size={image_size!r}"
            )
        if limit is not None and int(limit) < 1:
            raise ConfigError(f"Expected `limit` to be a positive int. Received: limit={limit!r}")
        root_path = Path(root).expanduser() if root is not None else cache_dir("coco")
        self.root = root_path
        self.split = split
        self.annotation_file = (
            Path(annotation_file)
            if annotation_file is not None
            else root_path / "annotations" / f"instances_{split}{year}.json"
        )
        self.image_dir = Path(image_dir) if image_dir is not None else root_path / f"{split}{year}"
        if not self.annotation_file.is_file():
            hint = (
                " dlbench cannot download COCO (about 20 GB); fetch val2017.zip and "
                "annotations_trainval2017.zip from https://cocodataset.org and unpack them there."
            )
            raise DataNotFoundError(
                f"COCO annotation file not found: {self.annotation_file}.{hint}"
            )
        self.image_size = int(image_size)
        self.fill = int(fill)
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None

        raw = read_json(self.annotation_file, "a COCO instances file")
        inst = parse_instances(raw, str(self.annotation_file), strict=strict)
        self._instances = inst
        self._gt_full = raw

        self.categories = CategoryMap(np.unique(inst.category_ids), _names(inst))

        order = np.argsort(inst.image_ids, kind="stable")
        if limit is not None:
            order = order[: int(limit)]
        images = [raw["images"][int(i)] for i in order]
        self._images = images
        kept = inst.image_ids[order]
        # Annotation indices per kept image, file order kept inside an image.
        ann_idx = np.flatnonzero(np.isin(inst.ann_image, kept))
        by_image: dict[int, list[int]] = {int(i): [] for i in kept.tolist()}
        for k, img in zip(ann_idx.tolist(), inst.ann_image[ann_idx].tolist()):
            by_image[img].append(k)
        self._targets = [
            self._target_arrays(np.asarray(by_image[int(i)], np.int64)) for i in kept.tolist()
        ]
        if limit is None:
            self._gt = self._gt_full
        else:
            self._gt = dict(self._gt_full)
            self._gt["images"] = images
            self._gt["annotations"] = [raw["annotations"][k] for k in ann_idx.tolist()]
        transform: dict[str, Any] = {
            "type": "letterbox",
            "size": self.image_size,
            "fill": self.fill,
            "resample": "bilinear",
            "layout": "NCHW",
            "dtype": "float32",
            "formula": "x/255" if self.mean is None else "(x/255 - mean) / std",
        }
        if self.mean is not None:
            transform.update(mean=list(self.mean), std=list(self.std or (1.0, 1.0, 1.0)))
        self._info = DatasetInfo(
            name="coco",
            task="detection",
            split=split,
            input_shape=(3, self.image_size, self.image_size),
            num_classes=len(self.categories),
            num_samples=len(images),
            source=str(self.annotation_file),
            class_names=self.categories.names,
            transform=transform,
        )

    def _target_arrays(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        inst = self._instances
        cat_ids = inst.ann_category[idx]
        return {
            "boxes": inst.ann_bbox[idx].reshape(-1, 4),
            "category_ids": cat_ids,
            "labels": self.categories.to_label(cat_ids, strict=False),
            "iscrowd": inst.ann_iscrowd[idx].astype(np.int64),
            "area": inst.ann_area[idx],
            "annotation_ids": inst.ann_ids[idx],
        }

    # ------------------------------------------------------------------ public

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return len(self._images)

    def coco_ground_truth(self) -> dict[str, Any]:
        """The instances dict (COCO format) for the images of this dataset (after ``limit``).

        It is the parsed file itself when no ``limit`` is set: treat it as read-only.
        """
        return self._gt

    @property
    def image_ids(self) -> list[int]:
        return [int(im["id"]) for im in self._images]

    def image_path(self, index: int) -> Path:
        return self.image_dir / str(self._images[index]["file_name"])

    def image_record(self, index: int) -> dict[str, Any]:
        return self._images[index]

    def coco_instances(self) -> CocoInstances:
        """The validated annotation file (all images, before ``limit``), problems included."""
        return self._instances

    def target(self, index: int) -> dict[str, np.ndarray]:
        """Ground-truth arrays of one image (original coordinates), without decoding it."""
        return self._targets[index]

    def label_to_category_id(self, labels: Any) -> np.ndarray:
        return self.categories.to_category_id(labels)

    def category_id_to_label(self, category_ids: Any) -> np.ndarray:
        return self.categories.to_label(category_ids)

    def load_image(self, index: int) -> np.ndarray:
        """The decoded image as uint8 RGB (H, W, 3), its size checked against the JSON."""
        rec = self._images[index]
        path = self.image_path(index)
        # The header must match the JSON before anything is decoded: what the file may
        # allocate is what the annotation file declares.
        size = image_size(path)
        if size != (int(rec["width"]), int(rec["height"])):
            raise DataError(
                f"{path}: expected {rec['width']}x{rec['height']} pixels (from "
                f"{self.annotation_file.name}, image id {rec['id']}). Received {size[0]}x"
                f"{size[1]}; its boxes would not match."
            )
        return np.asarray(open_rgb(path), dtype=np.uint8)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        s = self.image_size
        x = np.empty((len(idx), 3, s, s), dtype=np.float32)
        targets = []
        from PIL import Image

        for k, i in enumerate(idx):
            rgb = self.load_image(int(i))
            boxed, p = letterbox(Image.fromarray(rgb), s, fill=self.fill)
            x[k] = boxed.transpose(2, 0, 1)
            rec = self._images[int(i)]
            t = {key: v.copy() for key, v in self._targets[int(i)].items()}
            t.update(image_id=int(rec["id"]), file_name=str(rec["file_name"]), **p.to_dict())
            targets.append(t)
        x *= np.float32(1.0 / 255.0)
        if self.mean is not None:
            x -= np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
            x /= np.asarray(self.std or (1.0, 1.0, 1.0), np.float32).reshape(1, 3, 1, 1)
        return Batch(x, targets, idx)


def _names(inst: CocoInstances) -> list[str]:
    first: dict[int, str] = {}
    for cid, name in zip(inst.category_ids.tolist(), inst.category_names):
        first.setdefault(cid, name)
    return [first[c] for c in sorted(first)]
