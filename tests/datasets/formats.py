"""Writers for datasets in their exact official formats, for tests and benchmarks.

CIFAR python batches are written as the originals are: Python 2 pickles at protocol 2, strings
as ``BINSTRING`` (so they load as bytes with ``encoding="bytes"``), the pixel array pickled
through ``numpy.core.multiarray._reconstruct`` (the name NumPy 1 wrote). Binary batches are
records of label byte(s) + 3072 pixel bytes. COCO is an ``instances_*.json`` plus an image
folder; imagefolder is one folder per class, or the flat ILSVRC val layout with a labels file.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us change how str is saved
    """Pickles bytes and str the way Python 2 wrote ``str``: as (SHORT_)BINSTRING."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:  # noqa: D102
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + n.to_bytes(4, "little") + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:  # noqa: D102
        self.save_bytes(obj.encode("latin-1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj: Any, *, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """``obj`` as a Python-2-style protocol 2 pickle naming ``numpy_module._reconstruct``."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue()
    for mod in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        raw = raw.replace(
            b"c" + mod + b"\n_reconstruct\n", b"c" + numpy_module.encode() + b"\n_reconstruct\n"
        )
    return raw


def random_cifar(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    return images, labels


CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _files_to_targz(files: dict[str, bytes], archive: Path) -> Path:
    with tarfile.open(archive, "w:gz", compresslevel=1) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return archive


def cifar10_files(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    fmt: str = "python",
    numpy_module: str = "numpy.core.multiarray",
) -> dict[str, bytes]:
    """Relative path -> bytes of an official CIFAR-10 layout (train split into 5 batches)."""
    files: dict[str, bytes] = {}
    tr_x, tr_y = train
    chunks = np.array_split(np.arange(len(tr_x)), 5)
    if fmt == "python":
        folder = "cifar-10-batches-py/"
        for i, idx in enumerate(chunks, 1):
            files[folder + f"data_batch_{i}"] = _cifar_batch(
                f"training batch {i} of 5", tr_x[idx], {b"labels": tr_y[idx]}, numpy_module
            )
        files[folder + "test_batch"] = _cifar_batch(
            "testing batch 1 of 1", test[0], {b"labels": test[1]}, numpy_module
        )
        files[folder + "batches.meta"] = py2_pickle(
            {
                b"label_names": [n.encode() for n in CIFAR10_NAMES],
                b"num_cases_per_batch": len(chunks[0]),
                b"num_vis": 3072,
            }
        )
    else:
        folder = "cifar-10-batches-bin/"
        for i, idx in enumerate(chunks, 1):
            files[folder + f"data_batch_{i}.bin"] = _records(tr_x[idx], [tr_y[idx]])
        files[folder + "test_batch.bin"] = _records(test[0], [test[1]])
        files[folder + "batches.meta.txt"] = ("\n".join(CIFAR10_NAMES) + "\n\n").encode()
    return files


def cifar100_files(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    fmt: str = "python",
) -> dict[str, bytes]:
    """CIFAR-100 layout from (images, fine, coarse) per split."""
    fine_names = [f"fine_{i:02d}" for i in range(100)]
    coarse_names = [f"coarse_{i:02d}" for i in range(20)]
    files: dict[str, bytes] = {}
    if fmt == "python":
        folder = "cifar-100-python/"
        for split, (x, fine, coarse) in (("train", train), ("test", test)):
            files[folder + split] = _cifar_batch(
                split, x, {b"fine_labels": fine, b"coarse_labels": coarse}, "numpy.core.multiarray"
            )
        files[folder + "meta"] = py2_pickle(
            {
                b"fine_label_names": [n.encode() for n in fine_names],
                b"coarse_label_names": [n.encode() for n in coarse_names],
            }
        )
    else:
        folder = "cifar-100-binary/"
        for split, (x, fine, coarse) in (("train", train), ("test", test)):
            files[folder + split + ".bin"] = _records(x, [coarse, fine])
        files[folder + "fine_label_names.txt"] = ("\n".join(fine_names) + "\n").encode()
        files[folder + "coarse_label_names.txt"] = ("\n".join(coarse_names) + "\n").encode()
    return files


def _cifar_batch(
    label: str, x: np.ndarray, labels: dict[bytes, np.ndarray], numpy_module: str
) -> bytes:
    d: dict[bytes, Any] = {b"batch_label": label.encode()}
    for key, values in labels.items():
        d[key] = [int(v) for v in values]
    d[b"data"] = np.ascontiguousarray(x.reshape(len(x), 3072), dtype=np.uint8)
    d[b"filenames"] = [f"img_{i:05d}.png".encode() for i in range(len(x))]
    return py2_pickle(d, numpy_module=numpy_module)


def _records(x: np.ndarray, label_arrays: list[np.ndarray]) -> bytes:
    n = len(x)
    out = np.empty((n, len(label_arrays) + 3072), dtype=np.uint8)
    for j, lab in enumerate(label_arrays):
        out[:, j] = lab
    out[:, len(label_arrays) :] = x.reshape(n, 3072)
    return out.tobytes()


def write_files(files: dict[str, bytes], root: Path) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_targz(files: dict[str, bytes], archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    return _files_to_targz(files, archive)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- COCO

COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def coco_fixture(
    root: Path,
    split: str = "val",
    *,
    sizes: list[tuple[int, int]] | None = None,
    modes: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``root/annotations/instances_{split}2017.json`` and ``root/{split}2017/*.jpg``.

    Returns the instances dict that was written.
    """
    rng = np.random.default_rng(seed)
    sizes = sizes or [(64, 48), (40, 80), (50, 50), (96, 32)]
    modes = modes or ["RGB"] * len(sizes)
    img_dir = root / f"{split}2017"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    ann_id = 1
    for k, ((w, h), mode) in enumerate(zip(sizes, modes)):
        image_id = 1000 + 7 * k
        name = f"{image_id:012d}.jpg" if mode != "PNG" else f"{image_id:012d}.png"
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        im = Image.fromarray(arr)
        if mode == "L":
            im = im.convert("L")
        elif mode == "CMYK":
            im = im.convert("CMYK")
        im.save(img_dir / name, quality=95) if mode != "PNG" else im.save(img_dir / name)
        images.append({"id": image_id, "width": w, "height": h, "file_name": name, "license": 1})
        for _ in range(k % 3 + (1 if k < 3 else 0)):  # the 4th image has no annotations
            x, y = float(rng.uniform(0, w / 2)), float(rng.uniform(0, h / 2))
            bw, bh = float(rng.uniform(1, w - x)), float(rng.uniform(1, h - y))
            cat = int(rng.choice(COCO_IDS))
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": [[x, y, x + bw, y, x + bw, y + bh]],
                    "area": bw * bh * 0.9,
                    "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                    "iscrowd": int(ann_id % 5 == 0),
                }
            )
            ann_id += 1
    supers = ["person", "vehicle", "outdoor", "animal", "food"]
    gt = {
        "info": {"description": "dlbench test fixture", "year": 2017},
        "licenses": [{"id": 1, "name": "test", "url": ""}],
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": c, "name": f"cat{c}", "supercategory": supers[c % 5]} for c in COCO_IDS
        ],
    }
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / f"instances_{split}2017.json").write_text(json.dumps(gt))
    return gt


# ---------------------------------------------------------------------- imagefolder


def imagefolder_fixture(
    root: Path,
    classes: list[str],
    per_class: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (40, 30),
) -> dict[str, list[tuple[str, int]]]:
    """``root/<class>/<i>.png`` with random images; returns {class: [(file, label)]}."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, int]]] = {}
    for label, cls in enumerate(classes):
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        out[cls] = []
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"img_{i}.png")
            out[cls].append((str(d / f"img_{i}.png"), label))
    return out
