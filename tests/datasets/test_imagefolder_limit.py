"""``limit=N`` (``dlbench run --limit N``) on image folders: the first N images in the documented
order (round-robin over classes; sorted file names for the ILSVRC val layout), recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlbench import datasets
from dlbench.errors import ConfigError

CLASSES = ["dog", "cat", "ant"]  # sorted: ant, cat, dog


def _folders(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{c}{i}.png")


def _load(root: Path, **kw):
    return datasets.load("imagefolder", root=str(root), resize_size=12, crop_size=10, **kw)


def test_class_folders_limit_is_round_robin_over_classes(tmp_path: Path) -> None:
    _folders(tmp_path, 3)
    full = _load(tmp_path)
    ds = _load(tmp_path, limit=4)
    assert [p.name for p in ds.files] == ["ant0.png", "cat0.png", "dog0.png", "ant1.png"]
    assert ds.targets.tolist() == [0, 1, 2, 0]
    assert len(ds) == ds.info.num_samples == 4 and ds.info.num_classes == 3
    assert "first 4 of 9 images, round-robin over classes order" in ds.info.source
    assert ds.describe() == {
        "layout": "class-folders",
        "labels_file": "",
        "limit": 4,
        "total_images": 9,
        "order": "round-robin over classes",
    }
    # the images are the very ones of the full dataset, with the same labels
    where = {p: i for i, p in enumerate(full.files)}
    idx = [where[p] for p in ds.files]
    np.testing.assert_array_equal(ds.get_batch(range(4)).inputs, full.get_batch(idx).inputs)
    assert full.targets[idx].tolist() == ds.targets.tolist()
    assert "limit" not in full.describe() and full.info.source == str(tmp_path)


def test_a_limit_past_the_end_keeps_every_image_and_says_so(tmp_path: Path) -> None:
    _folders(tmp_path, 2)
    ds = _load(tmp_path, limit=100)
    assert len(ds) == 6 and "first 6 of 6 images" in ds.info.source


def test_ilsvrc_val_limit_takes_sorted_file_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 6)]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            tmp_path / n, format="JPEG"
        )
    labels = [2, 0, 1, 1, 0]
    # the labels file lists them in reverse: the subset does not depend on that order
    (tmp_path / "val_labels.txt").write_text(
        "".join(f"{n} {y}\n" for n, y in zip(reversed(names), reversed(labels)))
    )
    ds = _load(tmp_path, limit=2)
    assert [p.name for p in ds.files] == names[:2] and ds.targets.tolist() == labels[:2]
    assert ds.describe()["order"] == "file name"


@pytest.mark.parametrize("limit", [0, -3, "5", 2.0, True])
def test_a_bad_limit_is_a_clear_error(tmp_path: Path, limit) -> None:
    _folders(tmp_path, 1)
    with pytest.raises(ConfigError, match="Expected `limit` to be a positive int"):
        _load(tmp_path, limit=limit)


def test_run_limit_flag_reaches_the_image_folder() -> None:
    from dlbench.cli import build_parser
    from dlbench.cli.run import config_from_args

    args = build_parser().parse_args(["run", "--dataset", "imagefolder", "--limit", "7"])
    assert config_from_args(args).dataset_options["limit"] == 7
