"""ImageNet-style image folders, with the standard evaluation transform.

Two layouts:

- **class folders** (torchvision's ``ImageFolder``): ``root/<class>/<image>``, or
  ``root/<split>/<class>/<image>`` when ``root`` has a folder named after the split. Classes are
  the sub-folder names in sorted order; label ``i`` is the ``i``-th.
- **ILSVRC val layout**: one flat folder of images (``ILSVRC2012_val_00000001.JPEG``...) plus a
  labels file, given as ``labels_file=`` or found in ``root`` (``val_labels.txt``,
  ``LOC_val_solution.csv``, ``ILSVRC2012_validation_ground_truth.txt``). Accepted formats:

  * ``<file name> <label>`` per line (space, tab or comma separated); the label is a 0-based
    index or a class name (e.g. a WordNet id such as ``n01440764``);
  * Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``: the first token is the
    WordNet id);
  * one label per line for the images in sorted file-name order (the devkit's
    ``ILSVRC2012_validation_ground_truth.txt`` is 1-based: pass ``label_offset=1``, it is
    applied automatically for that file name).

  Class names come from ``class_names=``, or a ``synsets.txt`` / ``LOC_synset_mapping.txt`` /
  ``classes.txt`` file (first token per line) next to the images or in ``root``, or else the
  sorted distinct names in the labels file.

``limit=N`` (``dlbench run --limit N``) keeps the first N images in a fixed, documented order:
for class folders, round-robin over the classes (the first image of each class in class order,
then the second of each, ...; within a class, sorted paths), so a small subset spans the
classes; for the ILSVRC val layout, sorted file-name order (``ILSVRC2012_val_00000001`` first:
the same images whichever labels file is used, and their classes are already mixed). The
subset is recorded: ``info.num_samples`` is N, ``info.source`` says "first N of M images" and
``describe()`` has ``limit``, ``total_images`` and ``order``.

Transform (the standard ImageNet evaluation one): resize the shorter side to 256 (bilinear),
centre-crop 224, ``(x / 255 - mean) / std`` with the ImageNet mean
``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``; float32 NCHW.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.adapters.datasets._image import (
    IMAGE_EXTENSIONS,
    normalize_nchw,
    open_rgb,
    resize_center_crop,
)
from dlbench.data.cache import cache_dir
from dlbench.data.dataset import Batch, DataNotFoundError, Dataset, DatasetInfo
from dlbench.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LABEL_FILES = (
    "val_labels.txt",
    "labels.txt",
    "LOC_val_solution.csv",
    "ILSVRC2012_validation_ground_truth.txt",
    "val.txt",
)
CLASS_FILES = ("synsets.txt", "LOC_synset_mapping.txt", "classes.txt", "synset_words.txt")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


class ImageFolder(Dataset):
    """Images in class folders or the ILSVRC val layout (see the module docstring).

    Args:
        root: The folder; default ``$DLBENCH_CACHE/imagefolder``.
        split: Sub-folder to use when ``root`` has one by that name (``"test"`` falls back to
            ``"val"``); otherwise ``root`` itself is the split.
        labels_file: A labels file for a flat folder of images (ILSVRC val layout).
        class_names: Class names in label order (overrides discovery).
        label_offset: Subtracted from integer labels in a labels file.
        resize_size: Shorter side after resizing.
        crop_size: Side of the centre crop.
        mean: Per-channel mean (in [0, 1] units).
        std: Per-channel std.
        limit: Keep only the first ``limit`` images in the order described in the module
            docstring (round-robin over classes, or sorted file names).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "val",
        *,
        labels_file: str | Path | None = None,
        class_names: Sequence[str] | None = None,
        label_offset: int | None = None,
        resize_size: int = 256,
        crop_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        limit: int | None = None,
    ) -> None:
        if download:
            raise ConfigError(
                "imagefolder cannot be downloaded: ImageNet needs an account. Expected "
                "download=False and root= pointing at your copy."
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError(f"Expected `limit` to be a positive int. Received: limit={limit!r}")
        if crop_size > resize_size:
            raise ConfigError(
                f"Expected crop_size <= resize_size. Received: crop_size={crop_size}, "
                f"resize_size={resize_size}"
            )
        base = Path(root).expanduser() if root is not None else cache_dir("imagefolder")
        if not base.is_dir():
            raise DataNotFoundError(f"Image folder not found: {base}. Expected a folder of images.")
        folder = base
        for candidate in (split, "val") if split == "test" else (split,):
            if (base / candidate).is_dir():
                folder = base / candidate
                break
        self.root = base
        self.folder = folder
        self.split = split
        self.resize_size, self.crop_size = int(resize_size), int(crop_size)
        self.mean, self.std = tuple(mean), tuple(std)

        if labels_file is None:
            for search in (folder, base):
                found = [search / n for n in LABEL_FILES if (search / n).is_file()]
                if found and not any(p.is_dir() for p in folder.iterdir() if _has_images(p)):
                    labels_file = found[0]
                    break
        if labels_file is not None:
            self.labels_file: Path | None = Path(labels_file)
            files, labels, names = self._from_labels_file(
                folder, Path(labels_file), class_names, label_offset
            )
            layout = "ilsvrc-val"
        else:
            self.labels_file = None
            files, labels, names = self._from_class_folders(folder, class_names)
            layout = "class-folders"
        if not files:
            raise DataError(
                f"No images found in {folder}. Expected one sub-folder of images per class, "
                "or a flat folder of images with a labels file."
            )
        self.total_images = len(files)
        self.limit = limit
        self.order = "round-robin over classes" if layout == "class-folders" else "file name"
        source = str(folder)
        if limit is not None:
            keep = (
                _round_robin(labels)
                if layout == "class-folders"
                else sorted(range(len(files)), key=lambda i: files[i].name)
            )
            keep = keep[:limit]
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
            source += f" (first {len(files)} of {self.total_images} images, {self.order} order)"
        self.files = files
        self.targets = np.asarray(labels, dtype=np.int64)
        self.layout = layout
        self._info = DatasetInfo(
            name="imagefolder",
            task="classification",
            split=split,
            input_shape=(3, self.crop_size, self.crop_size),
            num_classes=len(names),
            num_samples=len(files),
            source=source,
            class_names=tuple(names),
            transform={
                "type": "resize_center_crop",
                "resize": self.resize_size,
                "crop": self.crop_size,
                "resample": "bilinear",
                "mean": list(self.mean),
                "std": list(self.std),
                "formula": "(x/255 - mean) / std",
                "layout": "NCHW",
                "dtype": "float32",
            },
        )

    # ------------------------------------------------------------------ discovery

    @staticmethod
    def _from_class_folders(
        folder: Path, class_names: Sequence[str] | None
    ) -> tuple[list[Path], list[int], list[str]]:
        dirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        names = list(class_names) if class_names is not None else dirs
        index = {n: i for i, n in enumerate(names)}
        files: list[Path] = []
        labels: list[int] = []
        for d in dirs:
            if d not in index:
                raise DataError(
                    f"{folder / d}: a class folder not among class_names. Expected one of "
                    f"{names[:10]}{'...' if len(names) > 10 else ''}"
                )
            for p in sorted((folder / d).rglob("*")):
                if _is_image(p):
                    files.append(p)
                    labels.append(index[d])
        return files, labels, names

    def _from_labels_file(
        self,
        folder: Path,
        labels_file: Path,
        class_names: Sequence[str] | None,
        label_offset: int | None,
    ) -> tuple[list[Path], list[int], list[str]]:
        if not labels_file.is_file():
            raise DataError(f"Labels file not found: {labels_file}")
        if label_offset is None:
            label_offset = 1 if "ground_truth" in labels_file.name else 0
        names = list(class_names) if class_names is not None else self._class_file(folder)
        text = _read_text(labels_file)
        rows = [r for r in (line.strip() for line in text.splitlines()) if r]
        pairs: list[tuple[str, str]] = []
        if rows and rows[0].lower().startswith("imageid,"):  # Kaggle LOC_val_solution.csv
            for n, rec in enumerate(csv.DictReader(text.splitlines()), 2):
                pred = (rec.get("PredictionString") or "").split()
                if not rec.get("ImageId") or not pred:
                    raise DataError(
                        f"{labels_file}, line {n}: expected 'ImageId,PredictionString' with a "
                        f"class first. Received {rec!r:.120}"
                    )
                pairs.append((rec["ImageId"], pred[0]))
        elif rows and all(len(re.split(r"[\s,]+", r)) == 1 for r in rows[:50]):
            images = sorted(p.name for p in folder.iterdir() if _is_image(p))
            if len(images) != len(rows):
                raise DataError(
                    f"{labels_file}: expected one label per image in {folder} ({len(images)} "
                    f"images, in sorted name order). Received {len(rows)} labels."
                )
            pairs = list(zip(images, rows))
        else:
            for n, r in enumerate(rows, 1):
                parts = re.split(r"[\s,]+", r)
                if len(parts) < 2:
                    raise DataError(
                        f"{labels_file}, line {n}: expected '<file name> <label>'. Received {r!r}"
                    )
                pairs.append((parts[0], parts[1]))
        if names is None:
            if all(_is_int(lab) for _, lab in pairs):
                k = max(int(lab) - label_offset for _, lab in pairs) + 1
                names = [str(i) for i in range(k)]
            else:
                names = sorted({lab for _, lab in pairs})
        index = {n: i for i, n in enumerate(names)}
        files: list[Path] = []
        labels: list[int] = []
        stems = None
        for n, (fname, lab) in enumerate(pairs, 1):
            path = folder / fname
            if not path.suffix and not path.exists():  # Kaggle ids have no extension
                if stems is None:
                    stems = {p.stem: p for p in folder.iterdir() if _is_image(p)}
                path = stems.get(fname, path)
            if _is_int(lab):
                label = int(lab) - label_offset
            elif lab in index:
                label = index[lab]
            else:
                raise DataError(
                    f"{labels_file}, entry {n}: unknown class {lab!r}. Expected an integer or "
                    f"one of {names[:5]}..."
                )
            files.append(path)
            labels.append(label)
        return files, labels, names

    def _class_file(self, folder: Path) -> list[str] | None:
        for search in (folder, self.root, folder.parent):
            for n in CLASS_FILES:
                p = search / n
                if p.is_file():
                    lines = _read_text(p).splitlines()
                    return [ln.split()[0] for ln in lines if ln.strip()]
        return None

    # ------------------------------------------------------------------ public

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` after resize + centre crop, uint8 (crop, crop, 3)."""
        return resize_center_crop(open_rgb(self.files[index]), self.resize_size, self.crop_size)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        c = self.crop_size
        hwc = np.empty((len(idx), c, c, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            hwc[k] = self.load_image(int(i))
        return Batch(normalize_nchw(hwc, self.mean, self.std), self.targets[idx].copy(), idx)

    def content_hashes(self) -> list[bytes | None]:
        """blake2b of each file's bytes (None for a missing file), for duplicate checks."""
        out: list[bytes | None] = []
        for p in self.files:
            try:
                out.append(hashlib.blake2b(p.read_bytes(), digest_size=16).digest())
            except OSError:
                out.append(None)
        return out

    def describe(self) -> dict[str, Any]:
        out = {"layout": self.layout, "labels_file": str(self.labels_file or "")}
        if self.limit is not None:
            out.update(limit=self.limit, total_images=self.total_images, order=self.order)
        return out


def _round_robin(labels: Sequence[int]) -> list[int]:
    """Indices in round-robin class order: the first image of each class (in class order),
    then the second of each, ...; within a class, the original (sorted path) order."""
    by_class: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(int(lab), []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    return [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)]


def _has_images(p: Path) -> bool:
    return p.is_dir() and any(_is_image(c) for c in p.iterdir())


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", s))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: expected a UTF-8 text file. Received bytes that are not UTF-8 ({e})."
        ) from None
