"""COCO detection: parsing, decoding, letterbox, category mapping, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlbench import datasets
from dlbench.adapters.datasets._image import decode_rgb, letterbox_params
from dlbench.adapters.datasets.coco import (
    COCO_CATEGORY_IDS,
    CategoryMap,
    boxes_from_letterbox,
    boxes_to_letterbox,
)
from dlbench.errors import DataError


@pytest.fixture
def coco(tmp_path: Path, formats):
    gt = formats.coco_fixture(tmp_path, modes=["RGB", "L", "CMYK", "PNG"])
    return tmp_path, gt


def test_load_matches_json(coco) -> None:
    root, gt = coco
    ds = datasets.load("coco", root=str(root), split="val", image_size=64)
    assert len(ds) == 4 and ds.info.task == "detection" and ds.info.num_classes == 80
    assert ds.info.input_shape == (3, 64, 64)
    assert ds.annotation_file == root / "annotations" / "instances_val2017.json"
    assert ds.coco_ground_truth() == gt
    batch = ds.get_batch(np.arange(4))
    assert batch.inputs.shape == (4, 3, 64, 64) and batch.inputs.dtype == np.float32
    assert 0.0 <= batch.inputs.min() and batch.inputs.max() <= 1.0
    images = sorted(gt["images"], key=lambda im: im["id"])
    for t, im in zip(batch.targets, images):
        anns = [a for a in gt["annotations"] if a["image_id"] == im["id"]]
        assert t["image_id"] == im["id"] and t["file_name"] == im["file_name"]
        assert (t["orig_width"], t["orig_height"]) == (im["width"], im["height"])
        np.testing.assert_array_equal(
            t["boxes"], np.array([a["bbox"] for a in anns]).reshape(-1, 4)
        )
        np.testing.assert_array_equal(t["category_ids"], [a["category_id"] for a in anns])
        np.testing.assert_array_equal(t["iscrowd"], [a["iscrowd"] for a in anns])
        np.testing.assert_array_equal(t["area"], [a["area"] for a in anns])
        np.testing.assert_array_equal(t["annotation_ids"], [a["id"] for a in anns])
        np.testing.assert_array_equal(
            t["labels"], [COCO_CATEGORY_IDS.index(a["category_id"]) for a in anns]
        )
    assert len(batch.targets[3]["boxes"]) == 0  # an image without annotations


def test_test_split_means_val(coco) -> None:
    root, _ = coco
    ds = datasets.load("coco", root=str(root), image_size=32)  # load()'s default split="test"
    assert ds.info.split == "val" and len(ds) == 4


def test_grayscale_and_cmyk_decode(coco) -> None:
    root, gt = coco
    gray = root / "val2017" / gt["images"][1]["file_name"]
    cmyk = root / "val2017" / gt["images"][2]["file_name"]
    with Image.open(gray) as im:
        assert im.mode == "L"
        ref = np.asarray(im)
    rgb = decode_rgb(gray)
    assert rgb.shape == (*ref.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], ref)
    with Image.open(cmyk) as im:
        assert im.mode == "CMYK"
        ref = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(decode_rgb(cmyk), ref)


def test_letterbox_pixels_and_params(coco) -> None:
    root, gt = coco
    ds = datasets.load("coco", root=str(root), image_size=64)
    t = ds.get_batch([1]).targets[0]  # 40 x 80 image: scale 0.8, pad_x 16
    assert (t["scale"], t["pad_x"], t["pad_y"]) == (0.8, 16.0, 0.0)
    x = ds.get_batch([1]).inputs[0]
    np.testing.assert_allclose(x[:, :, :16], 114 / 255, rtol=1e-6)  # the padding
    np.testing.assert_allclose(x[:, :, 48:], 114 / 255, rtol=1e-6)


@pytest.mark.parametrize(("w", "h", "size"), [(640, 480, 640), (333, 500, 416), (17, 1000, 64)])
def test_box_roundtrip(w: int, h: int, size: int) -> None:
    rng = np.random.default_rng(0)
    boxes = np.column_stack(
        [rng.uniform(0, w, 50), rng.uniform(0, h, 50), rng.uniform(1, w, 50), rng.uniform(1, h, 50)]
    )
    p = letterbox_params(w, h, size)
    lb = boxes_to_letterbox(boxes, p)
    np.testing.assert_allclose(boxes_from_letterbox(lb, p), boxes, rtol=0, atol=1e-9)
    np.testing.assert_allclose(boxes_from_letterbox(lb, p.to_dict()), boxes, rtol=0, atol=1e-9)
    # the whole image maps onto the letterboxed content area
    full = boxes_to_letterbox(np.array([[0, 0, w, h]]), p)[0]
    assert full[0] == p.pad_x and full[1] == p.pad_y
    assert max(full[2], full[3]) == pytest.approx(size)
    clipped = boxes_from_letterbox(np.array([[-5.0, -5.0, size + 10, size + 10]]), p, clip=True)
    assert clipped[0].tolist() == [0.0, 0.0, w, h]


def test_category_mapping(coco) -> None:
    root, _ = coco
    ds = datasets.load("coco", root=str(root), image_size=32)
    assert ds.categories.category_ids.tolist() == list(COCO_CATEGORY_IDS)
    labels = np.arange(80)
    ids = ds.label_to_category_id(labels)
    assert ids[0] == 1 and ids[11] == 13 and ids[-1] == 90
    np.testing.assert_array_equal(ds.category_id_to_label(ids), labels)
    with pytest.raises(DataError, match="12"):
        ds.category_id_to_label([12])
    with pytest.raises(DataError, match="80"):
        ds.label_to_category_id([80])
    m = CategoryMap([5, 3, 9])
    assert m.to_label([9, 3, 4], strict=False).tolist() == [2, 0, -1]


def test_limit_is_deterministic_and_cuts_ground_truth(coco) -> None:
    root, gt = coco
    ds = datasets.load("coco", root=str(root), image_size=32, limit=2)
    assert ds.image_ids == sorted(im["id"] for im in gt["images"])[:2]
    sub = ds.coco_ground_truth()
    assert [im["id"] for im in sub["images"]] == ds.image_ids
    assert {a["image_id"] for a in sub["annotations"]} <= set(ds.image_ids)
    assert len(sub["annotations"]) == sum(
        1 for a in gt["annotations"] if a["image_id"] in ds.image_ids
    )
    assert sub["categories"] == gt["categories"]


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("annotations", "iscrowd"),
        ("annotations", "bbox"),
        ("images", "file_name"),
        ("categories", "id"),
    ],
)
def test_missing_field_names_file(coco, section: str, field: str) -> None:
    root, gt = coco
    del gt[section][0][field]
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(DataError) as e:
        datasets.load("coco", root=str(root), image_size=32)
    assert str(path) in str(e.value) and repr(field) in str(e.value) and section in str(e.value)


def test_missing_top_level_and_bad_json(coco) -> None:
    root, gt = coco
    path = root / "annotations" / "instances_val2017.json"
    del gt["categories"]
    path.write_text(json.dumps(gt))
    with pytest.raises(DataError, match="'categories'"):
        datasets.load("coco", root=str(root))
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        datasets.load("coco", root=str(root))


def test_undecodable_image_names_file(coco) -> None:
    root, gt = coco
    bad = root / "val2017" / gt["images"][0]["file_name"]
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ds = datasets.load("coco", root=str(root), image_size=32)
    with pytest.raises(DataError, match="Could not decode image") as e:
        ds.get_batch([0])
    assert str(bad) in str(e.value)
    ds.get_batch([1])  # the others still load


def test_size_mismatch_and_missing_image(coco) -> None:
    root, gt = coco
    gt["images"][0]["width"] += 3
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    (root / "val2017" / gt["images"][1]["file_name"]).unlink()
    ds = datasets.load("coco", root=str(root), image_size=32)
    with pytest.raises(DataError, match="expected 67x48"):
        ds.get_batch([0])
    with pytest.raises(DataError, match="not found"):
        ds.get_batch([1])


def test_missing_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="instances_val2017.json"):
        datasets.load("coco", root=str(tmp_path), split="val")
