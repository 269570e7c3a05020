"""The float64 NumPy reference, op by op, against independent formulas.

Every other backend is judged against :mod:`dlbench.backends.numpy.ops`, so a wrong reference op
would make the right backends fail and the wrong ones pass. Here each op case of
:data:`dlbench.testing.cases.OP_CASES` (plus a few cases aimed at eps, overflow and GELU's
approximation) is recomputed by a second interpreter written differently on purpose: direct loops
over output positions for convolutions and pools (PyTorch's documented padding and
``count_include_pad``/``ceil_mode`` rules), SciPy's ``expit``/``softmax``/normal CDF for the
activations, one head at a time for attention, the gate equations of ``torch.nn.LSTM``'s
documentation for the LSTM. Both are float64, so they must agree to ~1e-12; a few values are
checked against hand-computed constants as well.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from dlbench import get_backend
from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.testing.cases import OP_CASES

RTOL, ATOL = 1e-10, 1e-12


# ----------------------------------------------------------------------------- the second interpreter


def _pad_hw(x, pads, fill):
    t, b, l, r = pads  # noqa: E741
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)


def conv2d(x, p, a, out_shape):
    w = p["weight"]
    (sh, sw), (dh, dw), g = a["stride"], a["dilation"], a["groups"]
    xp = _pad_hw(x, a["pads"], 0.0)
    o, cg, kh, kw = w.shape
    _, oh, ow = out_shape
    og = o // g
    out = np.zeros((x.shape[0], o, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            ys = oy * sh + dh * np.arange(kh)
            xs = ox * sw + dw * np.arange(kw)
            win = xp[:, :, ys][:, :, :, xs]  # (N, C, kh, kw)
            for oc in range(o):
                grp = oc // og
                patch = win[:, grp * cg : (grp + 1) * cg]
                out[:, oc, oy, ox] = (patch * w[oc][None]).sum(axis=(1, 2, 3))
    if "bias" in p:
        out += p["bias"][None, :, None, None]
    return out


def _pool(x, a, out_shape, kind):
    (kh, kw), (sh, sw) = a["kernel_size"], a["stride"]
    t, b, l, r = a["pads"]  # noqa: E741
    n, c, h, w = x.shape
    _, oh, ow = out_shape
    out = np.empty((n, c, oh, ow))
    include_pad = a.get("count_include_pad", True)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * sh - t, ox * sw - l  # window start in input coordinates
            ys = [y for y in range(y0, y0 + kh) if 0 <= y < h]
            xs = [v for v in range(x0, x0 + kw) if 0 <= v < w]
            win = x[:, :, ys][:, :, :, xs]
            if kind == "max":
                out[:, :, oy, ox] = win.max(axis=(2, 3))
                continue
            if include_pad:  # the padded border counts, what lies beyond it (ceil_mode) not
                ny = min(y0 + kh, h + b) - max(y0, -t)
                nx = min(x0 + kw, w + r) - max(x0, -l)
            else:
                ny, nx = len(ys), len(xs)
            out[:, :, oy, ox] = win.sum(axis=(2, 3)) / (ny * nx)
    return out


def _sigmoid(x):
    return special.expit(x)


def lstm(x, p, a):
    hs = a["hidden_size"]
    nb, t, _ = x.shape
    h, c = np.zeros((nb, hs)), np.zeros((nb, hs))
    wi, wf, wg, wo = np.split(p["weight_ih"], 4)
    ui, uf, ug, uo = np.split(p["weight_hh"], 4)
    bi, bf, bg, bo = np.split(p["bias_ih"] + p["bias_hh"], 4)
    seq = []
    for s in range(t):
        xt = x[:, s]
        i = _sigmoid(xt @ wi.T + h @ ui.T + bi)
        f = _sigmoid(xt @ wf.T + h @ uf.T + bf)
        g = np.tanh(xt @ wg.T + h @ ug.T + bg)
        o = _sigmoid(xt @ wo.T + h @ uo.T + bo)
        c = f * c + i * g
        h = o * np.tanh(c)
        seq.append(h.copy())
    return np.stack(seq, axis=1) if a["return_sequences"] else h


def mha(x, p, a):
    heads = a["num_heads"]
    nb, t, d = x.shape
    dh = d // heads
    wq, wk, wv = np.split(p["in_weight"], 3)
    bq, bk, bv = np.split(p["in_bias"], 3)
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    out = np.empty((nb, t, d))
    for hd in range(heads):
        sl = slice(hd * dh, (hd + 1) * dh)
        scores = np.einsum("ntd,nsd->nts", q[..., sl], k[..., sl]) / math.sqrt(dh)
        out[..., sl] = special.softmax(scores, axis=-1) @ v[..., sl]
    return out @ p["out_weight"].T + p["out_bias"]


def gelu(x, approximate):
    if approximate == "tanh":  # the formula of Hendrycks & Gimpel, written out
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * np.power(x, 3))
        return x * (1.0 + np.tanh(inner)) / 2.0
    return x * stats.norm.cdf(x)


def run_node(rn, xs, p):  # noqa: C901 - one branch per op, on purpose
    op, a, x = rn.op, rn.attrs, xs[0]
    if op == "conv2d":
        return conv2d(x, p, a, rn.out_shape)
    if op == "batch_norm":
        shape = (1, -1) + (1,) * (x.ndim - 2)
        m, v = p["mean"].reshape(shape), p["var"].reshape(shape)
        return p["weight"].reshape(shape) * (x - m) / np.sqrt(v + a["eps"]) + p["bias"].reshape(
            shape
        )
    if op == "dense":
        y = np.einsum("...i,oi->...o", x, p["weight"])
        return y + p["bias"] if "bias" in p else y
    if op == "relu":
        return np.where(x > 0, x, 0.0)
    if op == "relu6":
        return np.minimum(np.where(x > 0, x, 0.0), 6.0)
    if op == "sigmoid":
        return _sigmoid(x)
    if op == "tanh":
        return (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)
    if op == "silu":
        return x / (1.0 + np.exp(-x))
    if op == "hard_swish":
        return np.where(x <= -3, 0.0, np.where(x >= 3, x, x * (x + 3) / 6))
    if op == "gelu":
        return gelu(x, a["approximate"])
    if op == "softmax":
        return special.softmax(x, axis=a["axis"])
    if op == "dropout":
        return x
    if op in ("max_pool", "avg_pool"):
        return _pool(x, a, rn.out_shape, op[:3])
    if op == "global_avg_pool":
        return x.sum(axis=(2, 3)) / (x.shape[2] * x.shape[3])
    if op == "flatten":
        return x.reshape(len(x), -1)
    if op == "reshape":
        return x.reshape(len(x), *rn.out_shape)
    if op == "transpose":
        return np.transpose(x, a["perm"])
    if op in ("add", "mul", "div"):
        other = xs[1] if len(xs) == 2 else p["other"]
        return {"add": np.add, "mul": np.multiply, "div": np.true_divide}[op](x, other)
    if op == "sqrt":
        return np.power(x, 0.5)
    if op == "reciprocal":
        return np.power(x, -1.0)
    if op == "erf":  # erf(x) = 2 Phi(x sqrt 2) - 1, through the normal CDF
        return 2.0 * stats.norm.cdf(x * math.sqrt(2.0)) - 1.0
    if op == "concat":
        return np.concatenate(xs, axis=a["axis"])
    if op == "layer_norm":
        mu = x.sum(axis=-1, keepdims=True) / x.shape[-1]
        var = np.var(x, axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + a["eps"]) * p["weight"] + p["bias"]
    if op == "multi_head_attention":
        return mha(x, p, a)
    if op == "matmul":
        return np.einsum("nij,njk->nik", xs[0], xs[1])
    if op == "pad":
        pads = a["pads"]
        widths = [(0, 0)] + [(pads[i], pads[i + 1]) for i in range(0, len(pads), 2)]
        return np.pad(x, widths, constant_values=a["value"])
    if op == "slice":
        return x[(slice(None), *(slice(*s) for s in a["slices"]))]
    if op == "upsample":
        sh, sw = a["scale_factor"]
        rows = np.arange(rn.out_shape[1]) // sh
        cols = np.arange(rn.out_shape[2]) // sw
        return x[:, :, rows][:, :, :, cols]
    if op == "lstm":
        return lstm(x, p, a)
    if op == "embedding":  # one row copied per id, by explicit loops
        table = p["weight"]
        ids = x.reshape(len(x), -1)
        out = np.empty((*ids.shape, *table.shape[1:]))
        for i in range(ids.shape[0]):
            for j in range(ids.shape[1]):
                out[i, j] = table[int(ids[i, j])]
        return out.reshape(*x.shape, *table.shape[1:])
    if op == "reduce_mean":
        axes = tuple(a["axes"])
        count = np.prod([x.shape[i] for i in axes])
        return x.sum(axis=axes, keepdims=a["keepdims"]) / count
    raise AssertionError(f"no independent formula for op {op!r}: add one here")


def independent(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    env = {spec.inputs[0].name: x if x.dtype.kind == "i" else np.asarray(x, np.float64)}
    for rn in spec.resolved():
        params = {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
        env[rn.name] = run_node(rn, [env[i] for i in rn.inputs], params)
    return env[spec.outputs[0]]


def reference(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    return (
        get_backend("numpy")
        .build(spec)
        .predict(x if x.dtype.kind == "i" else np.asarray(x, np.float32))
    )


def _batch(shape, scale=1.0, n=3, seed=1):
    return (np.random.default_rng(seed).standard_normal((n, *shape)) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- every op case


def test_every_reference_op_has_a_case() -> None:
    from dlbench.backends.numpy.ops import OPS

    assert set(OPS) <= {c.op for c in OP_CASES} | {"dropout"}


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.id)
def test_op_case_matches_independent_formula(case) -> None:
    spec = case.spec()
    x = case.batch()
    got, want = reference(spec, x), independent(spec, x)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- aimed cases


def _one(op: str, shape: tuple[int, ...], attrs: dict, params: dict | None = None) -> ModelSpec:
    b = GraphBuilder(f"one_{op}", shape, 0)
    return b.build([b.add(op, [b.input], attrs, params or {})], {"task": "op-test"})


def test_gelu_is_exact_not_tanh_approximation() -> None:
    x = np.array([[-2.7, -1.0, 0.0, 1.0, 2.0]], np.float32)
    exact = reference(_one("gelu", (5,), {}), x)
    tanh = reference(_one("gelu", (5,), {"approximate": "tanh"}), x)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(exact, xd * stats.norm.cdf(xd), rtol=1e-13, atol=1e-15)
    assert exact[0, 3] == pytest.approx(0.8413447460685429, abs=1e-15)  # Phi(1)
    assert tanh[0, 3] == pytest.approx(0.8411919906082768, abs=1e-15)
    assert abs(exact[0, 0] - tanh[0, 0]) > 4e-4  # the approximation is far off at -2.7


def test_sigmoid_and_softmax_hand_values_and_no_overflow() -> None:
    x = np.array([[0.0, 2.0, -2.0, 1000.0]], np.float32)
    got = reference(_one("sigmoid", (4,), {}), x)
    np.testing.assert_allclose(got, [[0.5, 0.8807970779778823, 0.11920292202211755, 1.0]])
    big = np.array([[1000.0, 1000.0, 999.0, -1000.0]], np.float32)
    sm = reference(_one("softmax", (4,), {}), big)
    e = math.exp(-1.0)
    np.testing.assert_allclose(sm, [[1 / (2 + e), 1 / (2 + e), e / (2 + e), 0.0]], rtol=1e-14)


@pytest.mark.parametrize("eps", [0.5, 1e-3])
def test_batch_norm_and_layer_norm_use_the_node_eps(eps) -> None:
    rng = np.random.default_rng(0)
    bn = _one(
        "batch_norm",
        (3,),
        {"eps": eps},
        {
            "weight": rng.uniform(0.5, 1.5, 3),
            "bias": rng.normal(size=3),
            "mean": rng.normal(size=3),
            "var": np.array([1e-4, 0.5, 2.0]),
        },
    )
    ln = _one(
        "layer_norm",
        (6,),
        {"eps": eps},
        {"weight": rng.uniform(0.5, 1.5, 6), "bias": rng.normal(size=6)},
    )
    for spec, shape in ((bn, (3,)), (ln, (6,))):
        x = _batch(shape, 0.05)
        np.testing.assert_allclose(reference(spec, x), independent(spec, x), rtol=1e-12, atol=1e-14)


def test_non_square_kernel_conv_and_pools() -> None:
    rng = np.random.default_rng(0)
    conv = _one(
        "conv2d",
        (2, 7, 6),
        {"stride": [2, 1], "padding": [1, 0, 2, 1], "dilation": [1, 2]},
        {"weight": rng.normal(size=(3, 2, 3, 2)), "bias": rng.normal(size=3)},
    )
    grouped = _one(
        "conv2d",
        (6, 5, 5),
        {"groups": 3, "padding": 1},
        {"weight": rng.normal(size=(6, 2, 3, 3))},
    )
    maxp = _one("max_pool", (2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1})
    for spec in (conv, grouped, maxp):
        shape = spec.inputs[0].shape[1:]
        x = _batch(shape) - 3.0  # all negative: zero padding would win every border max
        np.testing.assert_allclose(reference(spec, x), independent(spec, x), rtol=RTOL, atol=ATOL)


def test_lstm_matches_torch_when_installed() -> None:
    torch = pytest.importorskip("torch")
    case = next(c for c in OP_CASES if c.id == "lstm_sequences")
    spec = case.spec()
    [rn] = [n for n in spec.resolved() if n.op == "lstm"]
    x = _batch(case.input_shape)
    layer = torch.nn.LSTM(case.input_shape[-1], rn.attrs["hidden_size"], batch_first=True).double()
    with torch.no_grad():
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{k}_l0").copy_(torch.from_numpy(np.asarray(rn.params[k], np.float64)))
        want = layer(torch.from_numpy(x.astype(np.float64)))[0].numpy()
    np.testing.assert_allclose(reference(spec, x), want, rtol=1e-10, atol=1e-12)


def test_conformance_op_cases_tell_exact_gelu_from_tanh() -> None:
    """A backend computing exact GELU with the tanh approximation must fail the shipped
    conformance check on some gelu op case (the suite's bound is 1e-4 of the output scale)."""
    from dlbench.analysis.parity import make_batch
    from dlbench.testing import BackendConformance

    class TanhGelu:  # every gelu node through the tanh formula, the rest as the reference
        def build(self, spec, device="cpu"):
            def predict(x):
                env = {spec.inputs[0].name: np.asarray(x, np.float64)}
                for rn in spec.resolved():
                    params = {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
                    xs = [env[i] for i in rn.inputs]
                    env[rn.name] = (
                        gelu(xs[0], "tanh") if rn.op == "gelu" else run_node(rn, xs, params)
                    )
                return env[spec.outputs[0]].astype(np.float32)

            return type("M", (), {"predict": staticmethod(predict)})()

    suite = BackendConformance()
    caught = []
    for case in (c for c in OP_CASES if c.op == "gelu" and c.id != "gelu_tanh"):
        spec = case.spec()
        batch = make_batch(spec.input_shape, suite.op_batch_size, seed=1) * case.input_scale
        try:
            suite._check(TanhGelu(), spec, batch, f"test:{case.id}")
        except AssertionError:
            caught.append(case.id)
    assert caught, "no gelu op case can tell exact GELU from its tanh approximation"


def test_erf_sqrt_reciprocal_hand_values() -> None:
    x = np.array([[0.5, 1.0, 2.0, 4.0]], np.float32)
    np.testing.assert_allclose(
        reference(_one("erf", (4,), {}), x),
        [[0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 0.9999999845827421]],
        rtol=1e-14,
    )
    np.testing.assert_allclose(reference(_one("sqrt", (4,), {}), x), [[0.5**0.5, 1, 2**0.5, 2]])
    np.testing.assert_allclose(reference(_one("reciprocal", (4,), {}), x), [[2, 1, 0.5, 0.25]])
    div = _one("div", (4,), {}, {"other": np.array([2.0, 4.0, 0.5, 8.0])})
    np.testing.assert_allclose(reference(div, x), [[0.25, 0.25, 4.0, 0.5]])
