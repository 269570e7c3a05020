"""ImageNet-style folders: class folders, the ILSVRC val layout, the eval transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlbench import datasets
from dlbench.adapters.datasets.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from dlbench.errors import DataError


def _expected(path: Path, resize: int, crop: int) -> np.ndarray:
    """The standard transform written out independently."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        nw, nh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = int(round((nw - crop) / 2)), int(round((nh - crop) / 2))
        arr = np.asarray(im.crop((left, top, left + crop, top + crop)), np.float32) / 255
    arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return arr.transpose(2, 0, 1)


def test_class_folders(tmp_path: Path, formats) -> None:
    written = formats.imagefolder_fixture(tmp_path / "train", ["dog", "cat", "ant"], 3)
    formats.imagefolder_fixture(tmp_path / "val", ["dog", "cat", "ant"], 2, seed=1)
    ds = datasets.load(
        "imagefolder", root=str(tmp_path), split="train", resize_size=36, crop_size=32
    )
    assert ds.info.class_names == ("ant", "cat", "dog")
    assert len(ds) == 9 and ds.info.input_shape == (3, 32, 32)
    expected = sorted(
        (Path(p), ["ant", "cat", "dog"].index(c)) for c, v in written.items() for p, _ in v
    )
    assert [(p, int(y)) for p, y in zip(ds.files, ds.targets)] == expected
    batch = ds.get_batch([0, 4])
    assert batch.inputs.dtype == np.float32
    for k, i in enumerate([0, 4]):
        np.testing.assert_allclose(batch.inputs[k], _expected(ds.files[i], 36, 32), atol=1e-5)
    val = datasets.load("imagefolder", root=str(tmp_path), split="test")  # falls back to val/
    assert len(val) == 6 and val.info.input_shape == (3, 224, 224)
    assert val.get_batch([0]).inputs.shape == (1, 3, 224, 224)


def _ilsvrc_val(root: Path, n: int = 6) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(1, n + 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        arr = rng.integers(0, 256, (30 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / name, format="JPEG")
        names.append(name)
    return names


WNIDS = ["n01440764", "n01443537", "n01484850"]


def test_ilsvrc_val_with_filename_label_file(tmp_path: Path) -> None:
    names = _ilsvrc_val(tmp_path)
    labels = [2, 0, 1, 1, 0, 2]
    (tmp_path / "val_labels.txt").write_text(
        "".join(f"{n} {y}\n" for n, y in zip(reversed(names), reversed(labels)))
    )
    (tmp_path / "synsets.txt").write_text("".join(f"{w} name\n" for w in WNIDS))
    ds = datasets.load("imagefolder", root=str(tmp_path), split="val", crop_size=32, resize_size=40)
    assert ds.layout == "ilsvrc-val" and ds.info.class_names == tuple(WNIDS)
    got = {p.name: int(y) for p, y in zip(ds.files, ds.targets)}
    assert got == dict(zip(names, labels))
    ds.get_batch(np.arange(len(ds)))


def test_ilsvrc_val_with_wnid_labels_and_kaggle_csv(tmp_path: Path) -> None:
    names = _ilsvrc_val(tmp_path)
    wn = [WNIDS[i] for i in [1, 1, 0, 2, 0, 2]]
    lf = tmp_path / "mine.txt"
    lf.write_text("".join(f"{n}\t{w}\n" for n, w in zip(names, wn)))
    ds = datasets.load("imagefolder", root=str(tmp_path), labels_file=str(lf))
    assert ds.info.class_names == tuple(WNIDS)
    assert ds.targets.tolist() == [1, 1, 0, 2, 0, 2]
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text(
        "ImageId,PredictionString\n"
        + "".join(f"{Path(n).stem},{w} 1 2 3 4 {w} 5 6 7 8\n" for n, w in zip(names, wn))
    )
    ds = datasets.load("imagefolder", root=str(tmp_path), labels_file=str(csv))
    assert ds.targets.tolist() == [1, 1, 0, 2, 0, 2]
    assert [p.name for p in ds.files] == names


def test_ilsvrc_devkit_ground_truth_is_one_based(tmp_path: Path) -> None:
    _ilsvrc_val(tmp_path, 4)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("3\n1\n2\n3\n")
    ds = datasets.load("imagefolder", root=str(tmp_path), class_names=WNIDS)
    assert ds.targets.tolist() == [2, 0, 1, 2]
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("3\n1\n")
    with pytest.raises(DataError, match="one label per image"):
        datasets.load("imagefolder", root=str(tmp_path), class_names=WNIDS)


def test_corrupt_image_names_file(tmp_path: Path, formats) -> None:
    formats.imagefolder_fixture(tmp_path, ["a", "b"], 2)
    bad = tmp_path / "b" / "img_1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = datasets.load("imagefolder", root=str(tmp_path), crop_size=16, resize_size=20)
    with pytest.raises(DataError) as e:
        ds.get_batch([3])
    assert str(bad) in str(e.value)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="No images"):
        datasets.load("imagefolder", root=str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        datasets.load("imagefolder", root=str(tmp_path / "nope"))
