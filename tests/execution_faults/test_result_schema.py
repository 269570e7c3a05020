"""results.load() checks a result file against result-v1.json: the first offending field, by its
JSON pointer, with what was expected and what was found; `run --resume`, `compare` and `report`
refuse a malformed body with exit 2 and no traceback.

The hand-written checker (dlbench.execution.schema_check, no dependency) is held to jsonschema,
the reference implementation, on the same documents.
"""

from __future__ import annotations

import copy
import json

import pytest

from dlbench.errors import ConfigError
from dlbench.execution import results
from dlbench.execution.schema_check import KEYWORDS, first_error


def _set(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _delete(doc, path):
    node = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


#: (name, edit of a valid document, pointer of the first offending field)
BREAKS = [
    ("cells not a list", lambda d: _set(d, ["cells"], {"a": 1}), "/cells"),
    ("cell without status", lambda d: _delete(d, ["cells", 2, "status"]), "/cells/2/status"),
    ("status unknown", lambda d: _set(d, ["cells", 1, "status"], "done"), "/cells/1/status"),
    (
        "batch size a string",
        lambda d: _set(d, ["cells", 0, "batch_size"], "8"),
        "/cells/0/batch_size",
    ),
    (
        "batch size a bool",
        lambda d: _set(d, ["cells", 0, "batch_size"], True),
        "/cells/0/batch_size",
    ),
    ("batch size zero", lambda d: _set(d, ["cells", 0, "batch_size"], 0), "/cells/0/batch_size"),
    (
        "median negative",
        lambda d: _set(d, ["cells", 0, "timing", "stats", "median"], -1.0),
        "/cells/0/timing/stats/median",
    ),
    (
        "sample a string",
        lambda d: _set(d, ["cells", 3, "timing", "samples_s", 4], "fast"),
        "/cells/3/timing/samples_s/4",
    ),
    (
        "no samples",
        lambda d: _set(d, ["cells", 3, "timing", "samples_s"], []),
        "/cells/3/timing/samples_s",
    ),
    (
        "failed cell without error",
        lambda d: _set(d, ["cells", 0, "status"], "failed"),
        "/cells/0/error",
    ),
    ("ok cell with an error", lambda d: _set(d, ["cells", 0, "error"], "boom"), "/cells/0/error"),
    ("warnings of numbers", lambda d: _set(d, ["warnings"], [1]), "/warnings/0"),
    ("run id empty", lambda d: _set(d, ["run_id"], ""), "/run_id"),
    ("no config", lambda d: _delete(d, ["config"]), "/config"),
    (
        "threads a float",
        lambda d: _set(d, ["config", "intra_op_threads"], 1.5),
        "/config/intra_op_threads",
    ),
    (
        "package version a number",
        lambda d: _set(d, ["environment", "packages", "numpy"], 2),
        "/environment/packages/numpy",
    ),
    (
        "parity ok a string",
        lambda d: _set(d, ["backends", "numpy", "cpu", "parity"], {"ok": "yes"}),
        "/backends/numpy/cpu/parity/ok",
    ),
    (
        "backend status unknown",
        lambda d: _set(d, ["backends", "torch", "cpu", "status"], "meh"),
        "/backends/torch/cpu/status",
    ),
    (
        "odd key escaped",
        lambda d: _set(d, ["backends", "a/b~c"], {"cpu": []}),
        "/backends/a~1b~0c/cpu",
    ),
    ("run status unknown", lambda d: _set(d, ["status"], "paused"), "/status"),
]


@pytest.fixture
def valid(docs):
    doc = docs.make_document(failed=("onnxruntime/cpu/throughput/bs32",))
    assert first_error(doc, results.schema()) is None
    return doc


@pytest.mark.parametrize(("name", "edit", "pointer"), BREAKS, ids=[b[0] for b in BREAKS])
def test_the_first_offending_field_is_named(valid, name, edit, pointer):
    doc = copy.deepcopy(valid)
    edit(doc)
    err = first_error(doc, results.schema())
    assert err is not None and err.pointer == pointer, err


@pytest.mark.parametrize(("name", "edit", "pointer"), BREAKS, ids=[b[0] for b in BREAKS])
def test_the_checker_agrees_with_jsonschema(valid, name, edit, pointer):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(results.schema())
    assert validator.is_valid(valid)
    doc = copy.deepcopy(valid)
    edit(doc)
    errors = list(validator.iter_errors(doc))
    assert errors, f"jsonschema accepts the edit {name!r}: the test's edit is wrong"
    paths = set()  # the fields jsonschema names (a missing field: its would-be place)
    for e in errors:
        parts = list(e.absolute_path)
        if e.validator == "required":
            parts.append(e.message.split("'")[1])
        paths.add("".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in parts))
    assert pointer in paths, (pointer, paths)


def test_documents_the_runner_writes_are_valid(valid, docs):
    for failed in ((), ("numpy/cpu/latency/bs1",)):
        assert first_error(docs.make_document(failed=failed), results.schema()) is None


def test_a_keyword_the_checker_does_not_know_is_refused():
    with pytest.raises(ValueError, match="patternProperties"):
        first_error({}, {"patternProperties": {"^a": {"type": "string"}}})
    assert {"type", "required", "$ref", "if", "then"} <= KEYWORDS


def test_json_equality_keeps_booleans_apart_from_numbers():
    assert first_error(True, {"const": 1}) is not None
    assert first_error(1, {"enum": [True]}) is not None
    assert first_error(1.0, {"const": 1}) is None
    assert first_error(3.0, {"type": "integer"}) is None
    assert first_error(3.5, {"type": "integer"}).expected == "an integer"


def test_load_names_path_pointer_expected_and_found(tmp_path, valid):
    doc = copy.deepcopy(valid)
    doc["cells"][1]["batch_size"] = "eight"
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as info:
        results.load(p)
    msg = str(info.value)
    assert msg.startswith(f"Expected `/cells/1/batch_size` in {p} to be an integer")
    assert msg.endswith('Received: "eight"')


def test_load_says_why_an_error_field_is_required(tmp_path, valid):
    doc = copy.deepcopy(valid)
    doc["cells"][0]["status"] = "failed"  # error stays null
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(
        ConfigError, match=r'`/cells/0/error` .* a string when `status` is "failed"'
    ):
        results.load(p)


def _malformed(tmp_path, valid, how):
    doc = copy.deepcopy(valid)
    if how == "cells_not_a_list":
        doc["cells"] = {"numpy/cpu/latency/bs1": doc["cells"][0]}
        pointer, found = "/cells", "an object"
    elif how == "cell_without_status":
        del doc["cells"][0]["status"]
        pointer, found = "/cells/0/status", "no such field"
    else:
        doc["cells"][0]["timing"]["n"] = "many"
        pointer, found = "/cells/0/timing/n", '"many"'
    path = tmp_path / f"{how}.json"
    path.write_text(json.dumps(doc))
    return path, pointer, found


@pytest.mark.parametrize(
    ("command", "how"),
    [("compare", "cells_not_a_list"), ("report", "cell_without_status"), ("run", "wrong_type")],
)
def test_compare_report_and_resume_refuse_a_malformed_body(run_cli, tmp_path, valid, command, how):
    """Through the command line, as a user meets it (one subprocess each: every malformation
    is also checked in-process above for every loader, since all three go through load())."""
    path, pointer, found = _malformed(tmp_path, valid, how)
    good = tmp_path / "good.json"
    results.write_atomic(good, valid)
    before = path.read_bytes()
    args = {
        "compare": ["compare", str(good), str(path)],
        "report": ["report", str(path), "--out", str(tmp_path / "rep")],
        "run": ["run", "--out", str(path), "--resume", "--quiet"],
    }[command]
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == 2, (args, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"dlbench: error: Expected `{pointer}` in {path}"), line
    assert line.endswith(f"Received: {found}"), line
    assert path.read_bytes() == before  # a refused file is never rewritten
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("how", ["cells_not_a_list", "cell_without_status", "wrong_type"])
def test_every_loader_refuses_a_malformed_body(tmp_path, valid, how):
    from dlbench.analysis.compare import compare
    from dlbench.report import load_results

    path, pointer, _ = _malformed(tmp_path, valid, how)
    for load in (results.load, load_results, lambda p: compare(valid, p)):
        with pytest.raises(ConfigError, match=f"Expected `{pointer}` in {path}"):
            load(path)
