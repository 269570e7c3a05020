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
