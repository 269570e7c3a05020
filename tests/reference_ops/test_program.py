"""The reference's compiled program (``backends/numpy/program.py``) against its own op table.

The program folds batch norm into convolutions, runs activations and residual adds in place and
splits the batch into micro-batches on threads. None of that may change a result beyond float64
rounding, so every check compares the program with the plain node-by-node interpreter of the same
op table (``OPS.run``, itself checked op by op against independent formulas in
``test_numpy_reference.py``) at 1e-12 of the output scale, and each is shown to catch a wrong
program (a fold without eps, an in-place write into a value read later).
"""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import get_backend, zoo
from dlbench.backends.numpy import program as program_mod
from dlbench.backends.numpy.ops import OPS
from dlbench.backends.numpy.program import Program, blas_threads, fold_batch_norm
from dlbench.model.zoo.builder import GraphBuilder

TOL = 1e-12  # of the output scale


def _plain(model, x: np.ndarray) -> list[np.ndarray]:
    env = OPS.run(model.nodes, {model.input_name: model.to_device(x)}, model.params)
    return [env[o] for o in model.outputs]


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-300))


def _outputs(model, x: np.ndarray) -> list[np.ndarray]:
    y = model.forward(model.to_device(x))
    return list(y) if isinstance(y, tuple) else [y]


def _batch(shape: tuple[int, ...], n: int = 5, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _conv_bn_spec(bias: bool, eps: float):
    b = GraphBuilder("conv_bn", (3, 9, 9), seed=1)
    c = b.conv(b.input, 8, 3, bias=bias)
    params = {  # statistics far from the identity, variances spread over 6 decades
        "weight": b.rng.uniform(-3.0, 3.0, 8),
        "bias": b.rng.normal(0.0, 2.0, 8),
        "mean": b.rng.normal(0.0, 5.0, 8),
        "var": 10.0 ** b.rng.uniform(-3.0, 3.0, 8),
    }
    y = b.add("batch_norm", [c], {"eps": eps}, params, "bn")
    return b.build([y])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_batch_norm_fold_agrees_with_the_unfolded_computation(bias: bool, eps: float) -> None:
    model = get_backend("numpy").build(_conv_bn_spec(bias, eps))
    (step,) = model.program.steps
    assert step.nodes == ["conv", "bn"]  # the batch norm is folded into the convolution
    x = _batch((3, 9, 9))
    (want,) = _plain(model, x)
    (got,) = _outputs(model, x)
    assert _rel(got, want) <= TOL


def test_a_fold_without_eps_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_eps(conv, bn, eps):
        return fold_batch_norm(conv, bn, 0.0)

    monkeypatch.setattr(program_mod, "fold_batch_norm", no_eps)
    model = get_backend("numpy").build(_conv_bn_spec(True, 1e-5))
    x = _batch((3, 9, 9))
    (want,) = _plain(model, x)
    (got,) = _outputs(model, x)
    assert _rel(got, want) > 100 * TOL


@pytest.mark.parametrize("name", ["mlp", "lenet5", "resnet20", "digits_cnn", "lstm"])
def test_program_agrees_with_the_plain_interpreter_on_zoo_models(name: str) -> None:
    spec = zoo.get(name)
    model = get_backend("numpy", intra_op_threads=2).build(spec)
    x = _batch(tuple(spec.inputs[0].shape[1:]), n=3)
    for got, want in zip(_outputs(model, x), _plain(model, x)):
        assert got.dtype == np.float64
        assert _rel(got, want) <= TOL


def test_resnet_blocks_fuse_conv_bn_add_relu() -> None:
    steps = get_backend("numpy").build(zoo.get("resnet20")).program.steps
    ops = {
        tuple(n.split(".")[-1] for n in st.nodes) for st in steps if len(st.nodes) > 1
    }  # e.g. ("conv2", "bn2", "add", "relu2")
    assert any(len(t) == 4 for t in ops)
    assert len(steps) < 40  # 72 nodes


def _liveness_spec():
    """Values read again after an elementwise op, a view of one, a graph input, outputs."""
    b = GraphBuilder("liveness", (2, 6, 6), seed=2)
    a = b.conv(b.input, 4, 3, bias=True, name="a")  # read by r and by s: no epilogue
    r = b.act(a, "relu", name="r")  # a is read later: not in place
    f = b.flatten(r)  # a view of r
    g = b.act(f, "relu6", name="g")  # r is read later through s: not in place
    s = b.add("add", [r, a], name="s")  # the last reader of r: in place into r
    t = b.act(s, "relu", name="t")  # s is an output: not in place
    i = b.act(b.input, "relu", name="i")  # a graph input: never in place
    late = b.conv(b.input, 4, 3, name="late")
    c2 = b.conv(b.input, 4, 3, name="c2")
    u = b.add("add", [c2, late], name="u")  # c2's add reads `late`, made before c2: fused
    spec = b.build([g, s, t, i, u])
    return spec


def test_inplace_only_where_nothing_reads_the_value_later() -> None:
    model = get_backend("numpy").build(_liveness_spec())
    steps = {st.out: st for st in model.program.steps}
    assert steps["r"].inplace is None
    assert steps["g"].inplace is None
    assert steps["s"].inplace == 0
    assert steps["t"].inplace is None
    assert steps["i"].inplace is None
    assert steps["u"].nodes == ["c2", "u"]  # the add runs in the convolution's epilogue
    x = _batch((2, 6, 6))
    x64 = model.to_device(x)
    kept = x64.copy()
    got = model.forward(x64)
    np.testing.assert_array_equal(x64, kept)  # the caller's input is untouched
    for g, w in zip(got, _plain(model, x)):
        assert _rel(g, w) <= TOL


def test_an_unsafe_inplace_write_is_caught() -> None:
    model = get_backend("numpy").build(_liveness_spec())
    (step,) = [st for st in model.program.steps if st.out == "r"]
    step.inplace = 0  # relu into `a`, which the add reads afterwards
    x = _batch((2, 6, 6))
    got, want = model.forward(model.to_device(x)), _plain(model, x)
    assert max(_rel(g, w) for g, w in zip(got, want)) > 1e-3


def test_micro_batches_on_threads_agree_and_give_the_blas_back() -> None:
    spec = zoo.get("resnet20")
    nodes = spec.resolved()
    params = {rn.name: {k: np.asarray(v, np.float64) for k, v in rn.params.items()} for rn in nodes}
    feeds = {spec.inputs[0].name: _batch((3, 32, 32), n=7).astype(np.float64)}
    whole = Program(nodes, params, [spec.inputs[0].name], spec.outputs, threads=1)
    split = Program(nodes, params, [spec.inputs[0].name], spec.outputs, threads=3)
    split.micro_batch = 2  # 4 micro-batches, the last one short
    before = blas_threads()
    (a,), (b,) = whole(feeds), split(feeds)
    assert blas_threads() == before
    assert a.shape == b.shape == (7, 10)
    assert _rel(b, a) <= TOL
    split.micro_batch = 3  # a wrong row order would not survive another cut
    assert _rel(split(feeds)[0], a) <= TOL


def test_threads_come_from_the_options() -> None:
    backend = get_backend("numpy", intra_op_threads=3)
    assert backend.build(zoo.get("mlp")).program.threads == 3
    assert backend.settings()["intra_op_threads_in_force"] == 3


def test_bad_threads_are_refused() -> None:
    spec = zoo.get("mlp")
    with pytest.raises(ValueError, match="Expected `threads` to be a positive int. Received: 0"):
        Program(spec.resolved(), {}, ["input"], spec.outputs, threads=0)


@pytest.mark.parametrize("block", [1 << 17, 700, 50])
def test_convolution_blocks_of_rows_and_images_agree(monkeypatch, block: int) -> None:
    """A large image's patches go by blocks of output rows, small ones by blocks of images."""
    from dlbench.backends.numpy import ops

    spec = _liveness_spec()
    model = get_backend("numpy").build(spec)
    x = _batch((2, 6, 6), n=3)
    want = _plain(model, x)  # the default block: whole batch at once here
    monkeypatch.setattr(ops, "_IM2COL_BLOCK", block)
    for g, w in zip(model.forward(model.to_device(x)), want):
        assert _rel(g, w) <= TOL


def test_relu6_epilogue_and_binary_ops_in_place() -> None:
    """conv -> bn -> relu6 runs in the convolution's epilogue; dense -> relu6 -> mul -> div in
    place (each the last reader of its input), against the plain interpreter."""
    b = GraphBuilder("relu6_inplace", (3, 7, 7), seed=4)
    c = b.act(b.bn(b.conv(b.input, 6, 3, name="c")), "relu6", name="c6")
    d = b.dense(b.flatten(c), 12, name="d")
    r = b.act(d, "relu6", name="r6")
    m = b.add("mul", [r], None, {"other": b.rng.uniform(5.0, 9.0, 12)}, name="m")
    q = b.add("div", [m, d], name="q")  # d read again: r6 may still be in place (its own value)
    model = get_backend("numpy").build(b.build([q]))
    steps = {st.out: st for st in model.program.steps}
    assert steps["c6"].nodes == ["c", "bn", "c6"]
    assert steps["r6"].inplace is None  # d is read again by q
    assert steps["m"].inplace == 0 and steps["q"].inplace == 0
    x = _batch((3, 7, 7), n=4) * 4.0  # large enough that relu6 clips at 6
    (want,) = _plain(model, x)
    (got,) = _outputs(model, x)
    assert _rel(got, want) <= TOL


def test_an_empty_batch_gives_empty_outputs() -> None:
    model = get_backend("numpy", intra_op_threads=2).build(zoo.get("resnet20"))
    assert model.predict(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 10)
