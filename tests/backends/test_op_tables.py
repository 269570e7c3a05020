"""Every backend's op table is keyed exactly by the op set, in its family's fixed signature."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest

from dlbench.backends.common.optable import EmitterTable, InterpreterTable, OpTable
from dlbench.errors import BackendError
from dlbench.model.ops import OPS as OP_SET
from dlbench.model.spec import ModelSpec, Node, TensorInfo
from dlbench.testing import op_table_problems

#: backend -> (modules it needs, family of its table)
BACKENDS = {
    "numpy": ((), InterpreterTable),
    "jax": (("jax",), InterpreterTable),
    "tensorflow": (("tensorflow",), InterpreterTable),
    "torch": (("torch",), EmitterTable),
    "onnxruntime": (("onnxruntime", "onnx"), EmitterTable),
}


def _params():
    out = []
    for name, (needs, _) in BACKENDS.items():
        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        marks = [pytest.mark.skip(reason=f"{absent[0]} is not installed")] if absent else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.parametrize("backend", _params())
def test_op_table_has_exactly_the_op_set(backend: str) -> None:
    table = importlib.import_module(f"dlbench.backends.{backend}.ops").OPS
    assert isinstance(table, BACKENDS[backend][1])
    assert set(table) == set(OP_SET)
    assert op_table_problems(table) == []


def test_problems_are_reported() -> None:
    """The check fails on a table that lacks an op, has a foreign name or a wrong signature."""
    from dlbench.backends.numpy.ops import OPS

    partial = {k: v for k, v in OPS.items() if k != "relu"}
    assert op_table_problems(partial, "interpreter") == ["missing ops of the op set: ['relu']"]
    extra = {**OPS, "swish": OPS["silu"]}
    assert op_table_problems(extra, "interpreter") == ["names outside the op set: ['swish']"]
    wrong = {**OPS, "relu": lambda xs, node: xs[0]}
    (problem,) = op_table_problems(wrong, "interpreter")
    assert "op 'relu'" in problem and "of 2" in problem
    assert op_table_problems(dict(OPS)) == [
        "expected family in ['emitter', 'interpreter']. Received: None"
    ]


def test_registration_accepts_only_op_set_names_once() -> None:
    table = InterpreterTable("Test")
    with pytest.raises(ValueError, match="expected an op of the op set.*'swish'"):
        table["swish"] = lambda xs, params, node: xs[0]

    @table.register("relu", "relu6")
    def clip(xs, params, node):
        return xs[0]

    assert set(table) == {"relu", "relu6"} and table["relu6"] is clip
    with pytest.raises(ValueError, match="'relu' is registered twice"):
        table["relu"] = clip
    with pytest.raises(TypeError, match="expected a function"):
        table["tanh"] = 1
    assert table.missing() == sorted(set(OP_SET) - {"relu", "relu6"})
    assert repr(table) == f"InterpreterTable('Test', 2/{len(OP_SET)} ops)"


def _spec() -> ModelSpec:
    nodes = [Node("a", "relu", ["x"], {}), Node("b", "add", ["a", "x"], {})]
    return ModelSpec("t", [TensorInfo("x", (None, 3))], ["b"], nodes, {}).validate()


def test_interpreter_run_and_missing_op() -> None:
    table = InterpreterTable("Test")
    calls = []

    @table.register("relu")
    def relu(xs, params, node):
        calls.append((node.name, dict(params)))
        return np.maximum(xs[0], 0.0)

    plan = _spec().resolved()
    with pytest.raises(BackendError, match="Node 'b': op 'add' has no Test implementation"):
        table.check(plan)
    table["add"] = lambda xs, params, node: xs[0] + xs[1]
    x = np.array([[-1.0, 0.5, 2.0]])
    env = table.run(plan, {"x": x}, {"a": {"w": 1}, "b": {}})
    np.testing.assert_array_equal(env["b"], [[-1.0, 1.0, 4.0]])
    assert calls == [("a", {"w": 1})]


def test_emitter_run_passes_the_graph_first() -> None:
    table = EmitterTable("Text")
    table["relu"] = lambda g, xs, node: g.append(f"{node.name}=relu({xs[0]})") or node.name
    table["add"] = lambda g, xs, node: g.append(f"{node.name}={'+'.join(xs)}") or node.name
    lines: list[str] = []
    env = table.run(_spec().resolved(), {"x": "x"}, lines)
    assert lines == ["a=relu(x)", "b=a+x"] and env["b"] == "b"
    assert isinstance(table, OpTable) and table.family == "emitter"


def test_numpy_backend_names_a_missing_op(monkeypatch) -> None:
    from dlbench import get_backend
    from dlbench.backends.numpy import ops

    monkeypatch.delitem(ops.OPS._fns, "add")
    with pytest.raises(BackendError, match="op 'add' has no NumPy implementation"):
        get_backend("numpy").build(_spec())


def test_unique_name_for_emitters() -> None:
    from dlbench.backends.common.optable import unique_name

    taken: set[str] = set()
    assert [unique_name(b, taken) for b in ("a", "a", "a", "a_1", "b")] == [
        "a",
        "a_1",
        "a_2",
        "a_1_1",
        "b",
    ]
    assert taken == {"a", "a_1", "a_2", "a_1_1", "b"}
