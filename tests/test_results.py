import json
import os

import pytest

from dlbench.errors import ConfigError
from dlbench.execution import results


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    results.write_atomic(path, {"a": 1, "nan": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1, "nan": None}
    results.write_atomic(path, {"b": [1.5]})
    assert json.loads(path.read_text()) == {"b": [1.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_write_atomic_failure_keeps_previous_version(tmp_path):
    path = tmp_path / "r.json"
    results.write_atomic(path, {"version": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        results.write_atomic(path, {"bad": Boom()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_write_atomic_uses_rename(tmp_path, monkeypatch):
    calls = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    results.write_atomic(tmp_path / "x.json", {})
    assert len(calls) == 1 and str(calls[0][1]).endswith("x.json")


def test_load_refuses_other_files(tmp_path):
    p = tmp_path / "other.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="Expected a dlbench result file"):
        results.load(p)
    p.write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON"):
        results.load(p)


def test_resume_refuses_changed_settings():
    doc = results.new_document({"model": "mlp", "dataset": "digits"}, {})
    with pytest.raises(ConfigError, match="model: file has 'mlp', now 'lenet5'"):
        results.check_resumable(doc, {"model": "lenet5", "dataset": "digits"})


def test_schema_is_valid_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(results.schema())
