"""The training result document has a JSON Schema, and a real ``dlbench train`` result meets it."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from dlbench.execution import results

jsonschema = pytest.importorskip("jsonschema")
TRAINER = next(
    (f for f in ("jax", "torch", "tensorflow") if importlib.util.find_spec(f) is not None), None
)


@pytest.fixture(scope="module")
def train_doc(tmp_path_factory):
    if TRAINER is None:
        pytest.skip("needs torch, tensorflow or jax")
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("train") / "t.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlbench.cli",
            "train",
            "--backends",
            TRAINER,
            "--epochs",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.exists(), proc.stderr + proc.stdout
    return json.loads(out.read_text())


def test_schema_is_valid_json_schema():
    schema = results.train_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == results.TRAIN_SCHEMA_NAME


def test_a_real_train_result_meets_the_schema(train_doc):
    jsonschema.validate(train_doc, results.train_schema())
    assert train_doc["schema"] == "dlbench.train-result" and train_doc["status"] == "complete"
    assert train_doc["backends"][TRAINER]["status"] == "ok"


@pytest.mark.parametrize(
    "path, value",
    [
        (("backends", "__trainer__", "runs", 0, "final", "test_accuracy"), "high"),
        (("backends", "__trainer__", "status"), "fine"),
        (("plan", "folds"), 0),
        (("schema",), "dlbench.result"),
        (("backends", "__trainer__", "runs"), []),  # ok without a single run
    ],
)
def test_the_schema_catches_a_wrong_document(train_doc, path, value):
    doc = copy.deepcopy(train_doc)
    path = tuple(TRAINER if p == "__trainer__" else p for p in path)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, results.train_schema())
