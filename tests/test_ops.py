"""The pad and slice ops: validation naming the node, shape inference, cost, NumPy semantics."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import get_backend
from dlbench.errors import SpecError
from dlbench.model.ops import check_node, count
from dlbench.model.spec import ModelSpec, Node, TensorInfo


def _spec(op: str, attrs: dict, shape: tuple[int, ...] = (4, 6, 7)) -> ModelSpec:
    return ModelSpec(
        "t", [TensorInfo("x", (None, *shape))], ["n"], [Node("n", op, ["x"], attrs)], {}
    )


@pytest.mark.parametrize(
    "attrs, shape, out",
    [
        ({"pads": [1, 2, 0, 0, 3, 0]}, (4, 6, 7), (7, 6, 10)),
        ({"pads": [0, 1], "value": -1.0}, (5,), (6,)),
    ],
)
def test_pad_shape_and_no_macs(attrs, shape, out) -> None:
    norm, got = check_node("n", "pad", 1, attrs, {}, [shape], {})
    assert got == out
    assert count("pad", norm, [shape], {}, got) == (0, 0)


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"pads": [1, 1]}, "a \\(before, after\\) pair for each of the 3 non-batch axes"),
        ({"pads": [0, 0, -1, 0, 0, 0]}, "non-negative `pads`"),
        ({"pads": 1}, "`pads` to be a list of ints"),
        ({}, "missing required attribute `pads`"),
        ({"pads": [0] * 6, "mode": "reflect"}, "unknown attribute"),
    ],
)
def test_pad_validation_names_the_node(attrs, message) -> None:
    with pytest.raises(SpecError, match=message) as info:
        _spec("pad", attrs).validate()
    assert "Node 'n' (pad)" in str(info.value)


@pytest.mark.parametrize(
    "attrs, out, index",
    [
        ({"axes": [2, 3], "steps": [2, 2]}, (4, 3, 4), np.s_[:, :, ::2, ::2]),
        ({"axes": [-1], "starts": [-5], "ends": [-1]}, (4, 6, 4), np.s_[:, :, :, -5:-1]),
        ({"axes": [1], "starts": [1], "ends": [100], "steps": [2]}, (2, 6, 7), np.s_[:, 1:100:2]),
        ({"axes": [3, 2], "starts": [6, 0], "steps": [1, 5]}, (4, 2, 1), np.s_[:, :, ::5, 6:]),
    ],
)
def test_slice_shape_cost_and_reference(attrs, out, index) -> None:
    spec = _spec("slice", attrs).validate()
    assert spec.output_shape == out
    assert spec.stats() == {"params": 0, "buffers": 0, "macs": 0, "flops": 0}
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(get_backend("numpy").build(spec).predict(x), x[index])


def test_pad_reference() -> None:
    spec = _spec("pad", {"pads": [2, 1, 0, 1, 1, 0], "value": 0.5}).validate()
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 7)).astype(np.float32)
    want = np.pad(x, ((0, 0), (2, 1), (0, 1), (1, 0)), constant_values=0.5)
    np.testing.assert_array_equal(get_backend("numpy").build(spec).predict(x), want)


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"axes": [0]}, "non-batch axis"),
        ({"axes": [4]}, "non-batch axis"),
        ({"axes": [2, -2]}, "distinct non-batch `axes`"),
        ({"axes": [2], "starts": [0, 1]}, "`starts` to have one value per axis"),
        ({"axes": [2], "steps": [0]}, "positive `steps`"),
        ({"axes": [2], "steps": [-1]}, "positive `steps`"),
        ({"axes": [2], "starts": [4], "ends": [2]}, "is empty"),
        ({"axes": "2"}, "`axes` to be a list of ints"),
    ],
)
def test_slice_validation_names_the_node(attrs, message) -> None:
    with pytest.raises(SpecError, match=message) as info:
        _spec("slice", attrs).validate()
    assert "Node 'n' (slice)" in str(info.value)


def test_slice_json_keeps_only_given_attrs(tmp_path) -> None:
    spec = _spec("slice", {"axes": [2, 3], "steps": [2, 2]}).validate()
    assert spec.nodes[0].attrs == {"axes": [2, 3], "steps": [2, 2]}  # derived ones not stored
    spec.save(tmp_path / "s")
    assert ModelSpec.load(tmp_path / "s") == spec


def _run_unary(op: str, x: np.ndarray) -> np.ndarray:
    spec = ModelSpec(
        "t", [TensorInfo("x", (None, *x.shape[1:]))], ["n"], [Node("n", op, ["x"])], {}
    )
    return get_backend("numpy").build(spec).predict(x)


def test_sqrt_reciprocal_erf_reference_against_math() -> None:
    """The float64 reference of sqrt, reciprocal and erf, element by element against Python's
    math module (an independent implementation)."""
    import math

    x = np.random.default_rng(0).uniform(0.05, 4.0, (3, 7))
    for op, fn in (("sqrt", math.sqrt), ("reciprocal", lambda v: 1.0 / v), ("erf", math.erf)):
        got = _run_unary(op, x)
        want = np.vectorize(fn)(x)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=op)
    neg = -x
    np.testing.assert_allclose(_run_unary("erf", neg), np.vectorize(math.erf)(neg), rtol=1e-14)
    assert np.isnan(_run_unary("sqrt", neg)).all()


def test_div_reference_and_cost() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (2, 3, 4))
    d = rng.uniform(0.5, 2.0, (4,))
    spec = ModelSpec(
        "t",
        [TensorInfo("x", (None, 3, 4))],
        ["q"],
        [Node("q", "div", ["x"], {}, {"other": "d"})],
        {"d": d.astype(np.float32)},
    )
    got = get_backend("numpy").build(spec).predict(x.astype(np.float32))
    want = [
        [[float(np.float32(v)) / float(np.float32(w)) for v, w in zip(row, d)] for row in s]
        for s in x
    ]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-14)
    norm, out = check_node("q", "div", 1, {}, {"other": "d"}, [(3, 4)], {"other": (4,)})
    assert out == (3, 4) and count("div", norm, [(3, 4)], {"other": (4,)}, out) == (0, 12)
    _, out = check_node("q", "div", 2, {}, {}, [(3, 4), (3, 1)], {})
    assert out == (3, 4)
    with pytest.raises(SpecError, match="do not broadcast"):
        check_node("q", "div", 2, {}, {}, [(3, 4), (3, 2)], {})


@pytest.mark.parametrize("op, flops", [("sqrt", 1), ("reciprocal", 1), ("erf", 8)])
def test_unary_costs(op, flops) -> None:
    norm, out = check_node("n", op, 1, {}, {}, [(2, 5)], {})
    assert out == (2, 5) and count(op, norm, [(2, 5)], {}, out) == (0, 10 * flops)


# -- embedding: integer token ids -------------------------------------------------------------


def _ids_spec(dtype: str = "int64", chain: tuple[str, ...] = (), table=(11, 6)) -> ModelSpec:
    nodes, prev = [], "ids"
    for k, op in enumerate(chain):
        attrs = {"shape": [4]} if op == "reshape" else {}
        nodes.append(Node(f"c{k}", op, [prev], attrs))
        prev = f"c{k}"
    nodes.append(Node("emb", "embedding", [prev], params={"weight": "table"}))
    table_arr = np.arange(np.prod(table), dtype=np.float32).reshape(table)
    return ModelSpec(
        "ids", [TensorInfo("ids", (None, 4), dtype)], ["emb"], nodes, {"table": table_arr}
    )


def test_embedding_shape_cost_and_reference() -> None:
    spec = _ids_spec().validate()
    assert spec.output_shape == (4, 6)
    assert spec.stats() == {"params": 66, "buffers": 0, "macs": 0, "flops": 0}
    ids = np.array([[0, 10, 3, 3], [5, 1, 0, 9]])
    out = get_backend("numpy").build(spec).predict(ids)
    np.testing.assert_array_equal(out, spec.params["table"][ids])
    # a table of any rank: rows of shape table[1:]
    assert _ids_spec(table=(5, 2, 3)).validate().output_shape == (4, 2, 3)


def test_integer_input_round_trips_through_a_file(tmp_path) -> None:
    spec = _ids_spec(chain=("reshape",))
    spec.save(tmp_path / "ids")
    back = ModelSpec.load(tmp_path / "ids")
    assert back.inputs[0].dtype == "int64" and back == spec
    assert back.input_desc().vocab == 11


@pytest.mark.parametrize(
    "spec, message",
    [
        (_ids_spec(dtype="int32"), "expected dtype 'float32', 'int64'. Received: 'int32'"),
        (_ids_spec(dtype="float32"), "expected integer ids as input"),
        (_ids_spec(chain=("relu",)), "input 'ids' holds integer ids; expected it to be read by"),
        (
            ModelSpec(
                "o",
                [TensorInfo("ids", (None, 4), "int64")],
                ["r"],
                [Node("r", "reshape", ["ids"], {"shape": [2, 2]})],
                {},
            ),
            "Output 'r' holds integer ids",
        ),
    ],
)
def test_integer_ids_only_flow_into_embedding(spec, message) -> None:
    with pytest.raises(SpecError, match=message):
        spec.validate()


def test_ids_reach_embedding_through_layout_ops() -> None:
    spec = _ids_spec(chain=("reshape", "flatten")).validate()
    assert spec.input_desc().vocab == 11 and spec.output_shape == (4, 6)


@pytest.mark.parametrize(
    "batch, message",
    [
        (
            np.zeros((2, 4), np.float32),
            "expected integer token ids \\(an int64 batch\\). Received: a float32 batch",
        ),
        (
            np.array([[0, 1, 2, 11]] * 2),
            "expected token ids in \\[0, 11\\). Received: ids from 0 to 11",
        ),
        (np.array([[0, -1, 2, 3]] * 2), "Received: ids from -1 to 3"),
    ],
)
def test_a_wrong_batch_for_an_integer_input_is_a_clear_error(batch, message) -> None:
    model = get_backend("numpy").build(_ids_spec())
    with pytest.raises(SpecError, match=message):
        model.predict(batch)


def test_int32_ids_are_passed_on_as_int64() -> None:
    desc = _ids_spec().input_desc()
    assert desc.host(np.array([[1, 2, 3, 4]], np.int32)).dtype == np.int64
    # a float input is unchanged: any numeric batch becomes the backend's float dtype
    assert (
        _spec("pad", {"pads": [0, 0] * 3}).input_desc().host(np.ones((1, 2), np.int64)).dtype
        == np.float32
    )


def test_parity_on_an_integer_input_uses_valid_ids() -> None:
    from dlbench.analysis.parity import check, make_input

    spec = _ids_spec()
    x = make_input(spec, 64, seed=0)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() == 10
    pytest.importorskip("onnxruntime")
    (rec,) = check(spec, ["onnxruntime"], batch_size=8)
    assert rec["ok"] and rec["max_abs_diff"] == 0.0, rec
