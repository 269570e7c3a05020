"""Issue 23: the torch build overwrites a tensor in place only where no one can see it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dlbench  # noqa: E402
from dlbench.backends.torch.backend import build_module  # noqa: E402
from dlbench.model.zoo.builder import GraphBuilder  # noqa: E402


def _inplace_counts(gm):
    methods = sum(1 for n in gm.graph.nodes if n.op == "call_method" and n.target.endswith("_"))
    modules = sum(1 for m in gm.modules() if getattr(m, "inplace", False) is True)
    return methods, modules


def _run(gm, x):
    with torch.inference_mode():
        return gm(x)


@pytest.mark.parametrize(
    "name,methods,modules",
    [("resnet20", 9, 19), ("mobilenet_v2", 10, 35)],  # every residual add, every activation
)
def test_inplace_build_equals_the_plain_build_and_leaves_the_input_alone(name, methods, modules):
    spec = dlbench.zoo.get(name)
    plain, inplace = build_module(spec), build_module(spec, inplace=True)
    assert _inplace_counts(plain) == (0, 0)
    assert _inplace_counts(inplace) == (methods, modules)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32))
    kept = x.clone()
    y_plain, y_inplace = _run(plain, x), _run(inplace, x)
    assert torch.equal(x, kept)
    assert torch.equal(y_plain, y_inplace)  # the same arithmetic, bit for bit
    assert torch.equal(_run(inplace, x), y_inplace)  # and again: nothing kept between calls


def _shared_input_spec():
    """relu(input); conv -> relu whose input also feeds an add; add(conv, relu) -> hardswish."""
    b = GraphBuilder("shared", (2, 5, 5), seed=1)
    r0 = b.act(b.input, "relu", name="on_input")  # the graph input: never overwritten
    c = b.conv(r0, 2, 3, name="conv")
    r1 = b.act(c, "relu", name="shared_relu")  # conv feeds this relu AND the add below
    s = b.add("add", [c, r1], name="add")  # conv has two users; r1 has one: add_ into r1
    r2 = b.act(s, "hard_swish", name="last")  # the add's output, owned: in place
    return b.build([r2])


def test_a_tensor_read_twice_or_a_graph_input_is_never_overwritten():
    spec = _shared_input_spec()
    gm = build_module(spec, inplace=True)
    mods = dict(gm.named_modules())
    assert mods["on_input"].inplace is False
    assert mods["shared_relu"].inplace is False
    assert mods["last"].inplace is True
    (add,) = [n for n in gm.graph.nodes if n.op == "call_method"]
    assert add.target == "add_" and add.args[0].target == "shared_relu"
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 2, 5, 5)).astype(np.float32))
    kept = x.clone()
    want = _run(build_module(spec), x)
    assert torch.equal(_run(gm, x), want) and torch.equal(x, kept)


def test_the_check_catches_an_unsafe_inplace():
    """The equality above can fail: making the relu whose input is read again in place
    (what the pass refuses) changes the output, and on the graph input it changes the input."""
    spec = _shared_input_spec()
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 2, 5, 5)).astype(np.float32))
    want = _run(build_module(spec), x)
    bad = build_module(spec)
    dict(bad.named_modules())["shared_relu"].inplace = True
    assert not torch.equal(_run(bad, x), want)
    bad = build_module(spec)
    dict(bad.named_modules())["on_input"].inplace = True
    kept = x.clone()
    _run(bad, x)
    assert not torch.equal(x, kept)


def test_only_inference_mode_builds_get_inplace_ops():
    spec = dlbench.zoo.get("resnet20")
    on = dlbench.get_backend("torch", intra_op_threads=1).build(spec)
    off = dlbench.get_backend("torch", intra_op_threads=1, inference_mode=False).build(spec)
    assert _inplace_counts(on.module) == (9, 19)
    assert _inplace_counts(off.module) == (0, 0)
    x = np.random.default_rng(3).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(on.predict(x), off.predict(x))
