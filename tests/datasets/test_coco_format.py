"""One COCO instances validator: the dataset, the evaluator and the data check apply the same
rules, reject the same files, and say what was expected and what was received."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dlbench import datasets
from dlbench.data.check import check
from dlbench.data.coco_format import (
    DATASET_FIELDS,
    CocoFormatError,
    read_json,
    validate_instances,
)
from dlbench.errors import DataError, MetricError
from dlbench.metrics.coco import coco_evaluate


def _doc() -> dict[str, Any]:
    return {
        "images": [{"id": 1, "width": 100, "height": 80, "file_name": "1.jpg"}],
        "categories": [{"id": 3, "name": "car"}],
        "annotations": [
            {
                "id": 17,
                "image_id": 1,
                "category_id": 3,
                "bbox": [10, 10, 20, 30],
                "area": 600,
                "iscrowd": 0,
            }
        ],
    }


def _set(doc: dict, section: str, key: str, value: Any) -> dict:
    doc[section][0][key] = value
    return doc


# (section, field, bad value, the message it must give)
BAD_VALUES = [
    (
        "annotations",
        "iscrowd",
        "yes",
        "Expected `iscrowd` to be 0 or 1. Received: iscrowd='yes' (annotation id 17)",
    ),
    ("annotations", "iscrowd", None, "Received: iscrowd=None (annotation id 17)"),
    ("annotations", "iscrowd", 2, "Received: iscrowd=2 (annotation id 17)"),
    (
        "annotations",
        "id",
        "17",
        "Expected `id` to be an int (64-bit). Received: id='17' (annotations[0])",
    ),
    ("annotations", "image_id", 1.0, "Received: image_id=1.0 (annotation id 17)"),
    ("annotations", "category_id", "3", "Received: category_id='3' (annotation id 17)"),
    ("annotations", "bbox", [0, 0, float("nan"), 1], "Expected `bbox` to be 4 finite numbers"),
    ("annotations", "bbox", [0, 0, -1, 1], "width and height >= 0. Received: bbox=[0, 0, -1, 1]"),
    ("annotations", "bbox", [0, 0, "1", 1], "Received: bbox=[0, 0, '1', 1]"),
    ("annotations", "bbox", [0, 0, 1], "Received: bbox=[0, 0, 1]"),
    (
        "annotations",
        "area",
        float("nan"),
        "Expected `area` to be a finite number >= 0. Received: area=nan",
    ),
    ("images", "id", "1", "Expected `id` to be an int (64-bit). Received: id='1' (images[0])"),
    (
        "images",
        "width",
        "100",
        "Expected `width` to be a positive int. Received: width='100' (image id 1)",
    ),
    ("images", "height", 0, "Received: height=0 (image id 1)"),
    (
        "categories",
        "id",
        None,
        "Expected `id` to be an int (64-bit). Received: id=None (categories[0])",
    ),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_VALUES)
def test_validator_says_expected_and_received(section, key, value, message) -> None:
    doc = _set(_doc(), section, key, value)
    with pytest.raises(CocoFormatError) as e:
        validate_instances(doc, "x.json")
    assert str(e.value).startswith("x.json: ")
    assert message in str(e.value)
    assert isinstance(e.value, DataError) and isinstance(e.value, MetricError)


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_VALUES)
def test_every_consumer_rejects_the_same_values(
    tmp_path: Path, formats, section, key, value, message
) -> None:
    # The evaluator (dict and file), the dataset and the data check give the same message.
    doc = _set(_doc(), section, key, value)
    dt = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 30], "score": 0.9}]
    with pytest.raises(MetricError, match=_re(message)):
        coco_evaluate(doc, dt)
    gt = formats.coco_fixture(tmp_path)
    gt[section][0][key] = value
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(gt))
    expected = f"Expected `{key}` to be"
    with pytest.raises(DataError, match=_re(expected)) as e:
        datasets.load("coco", root=str(tmp_path), image_size=32)
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match=_re(expected)):  # the only split does not load
        check("coco", root=str(tmp_path))
    formats.coco_fixture(tmp_path, split="train")
    report = check("coco", root=str(tmp_path))  # train loads, val exists but does not
    assert not report.ok and "train" in report.stats
    assert any(i.check == "load" and expected in i.message for i in report.errors)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_iscrowd_yes_is_an_error_not_ap_minus_one() -> None:
    doc = _set(_doc(), "annotations", "iscrowd", "yes")
    dt = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 30], "score": 0.9}]
    with pytest.raises(MetricError, match="iscrowd"):
        coco_evaluate(doc, dt)
    assert coco_evaluate(_doc(), dt)["AP"] == 1.0  # the valid file scores as before


def test_missing_fields_depend_on_the_consumer() -> None:
    minimal = {
        "images": [{"id": 1}],
        "categories": [{"id": 3}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2]}],
    }
    inst = validate_instances(minimal)
    assert inst.ann_area.tolist() == [4.0] and inst.ann_iscrowd.tolist() == [False]
    with pytest.raises(CocoFormatError, match=r"images\[0\] \(id=1\) is missing the 'width' field"):
        validate_instances(minimal, fields=DATASET_FIELDS)


def test_reference_problems_are_collected_then_raised() -> None:
    doc = _doc()
    doc["annotations"].append(dict(doc["annotations"][0], category_id=99, image_id=5))
    inst = validate_instances(doc)
    checks = {p.check for p in inst.problems}
    assert checks == {"ids", "images", "categories"}
    with pytest.raises(CocoFormatError, match="unique annotation ids"):
        inst.raise_problems()
    doc["annotations"][1]["id"] = 18
    with pytest.raises(MetricError, match=r"unknown image_id\(s\): 5"):
        coco_evaluate(doc, [])


@pytest.mark.parametrize(
    "text",
    ['{"images": [{"id": 1}], "annotations": [', "", "[" * 100_000, '{"images": NaN'],
)
def test_truncated_or_invalid_json_is_a_data_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(text)
    with pytest.raises(DataError, match="gt.json") as e:
        read_json(path, "a COCO instances JSON file")
    assert "Expected a COCO instances JSON file" in str(e.value)
    with pytest.raises(DataError):
        coco_evaluate(path, [])
    with pytest.raises(MetricError):
        coco_evaluate(path, [])


def test_truncated_detections_file_is_a_data_error(tmp_path: Path) -> None:
    dt = tmp_path / "dt.json"
    dt.write_text('[{"image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 30], "sco')
    with pytest.raises(DataError, match=r"dt.json: not valid JSON.*COCO results"):
        coco_evaluate(_doc(), dt)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image_id": "1"}, "Expected `image_id` to be an int. Received: image_id='1'"),
        ({"category_id": "3"}, "Received: category_id='3'"),
        ({"category_id": 3.0}, "Received: category_id=3.0"),
        ({"bbox": ["10", 10, 20, 30]}, "4 numbers"),
        ({"score": "0.9"}, "numeric score"),
        ({"score": None}, "numeric score"),
    ],
)
def test_detections_of_the_wrong_type(change, match: str) -> None:
    d = {"image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 30], "score": 0.9}
    d.update(change)
    with pytest.raises(MetricError, match=_re(match)):
        coco_evaluate(_doc(), [d])


def test_detection_arrays_of_strings_are_refused() -> None:
    dt = {"image_id": ["1"], "boxes": [[10, 10, 20, 30]], "scores": [0.9], "labels": [3]}
    with pytest.raises(MetricError, match="integer detection image_ids"):
        coco_evaluate(_doc(), dt)
    dt = {"image_id": [1], "boxes": [["10", 10, 20, 30]], "scores": [0.9], "labels": [3]}
    with pytest.raises(MetricError, match="numeric detection boxes"):
        coco_evaluate(_doc(), dt)


def test_valid_file_is_unchanged_by_validation(tmp_path: Path, formats) -> None:
    gt = formats.coco_fixture(tmp_path)
    before = copy.deepcopy(gt)
    ds = datasets.load("coco", root=str(tmp_path), image_size=32)
    assert ds.coco_ground_truth() == before
    inst = ds.coco_instances()
    assert inst.ann_ids.tolist() == [a["id"] for a in gt["annotations"]]
    assert check("coco", root=str(tmp_path), split="val").ok


def test_edge_values_take_the_careful_path() -> None:
    import numpy as np

    # NumPy scalars and tuples (a dict built in Python) are accepted as what they are.
    doc = _doc()
    doc["annotations"][0].update(id=np.int64(17), bbox=(10, 10, np.float32(20), 30), iscrowd=1)
    inst = validate_instances(doc)
    assert inst.ann_ids.tolist() == [17] and inst.ann_iscrowd.tolist() == [True]
    # Ints beyond int64 or float range are errors, not OverflowError tracebacks.
    for section, key, value in [
        ("annotations", "id", 2**70),
        ("annotations", "area", 10**400),
        ("annotations", "bbox", [0, 0, 10**400, 1]),
        ("images", "width", 2**64),
    ]:
        with pytest.raises(CocoFormatError, match=f"`{key}`"):
            validate_instances(_set(_doc(), section, key, value))
    # A bool is not an id.
    with pytest.raises(CocoFormatError, match="Received: category_id=True"):
        validate_instances(_set(_doc(), "annotations", "category_id", True))
