"""Subgraph patterns fused into one op before mapping: the erf and tanh GELUs, x * HardSigmoid(x)
and the NaN guard after a softmax.

Exporters write ``GELU(x) = x * 0.5 * (1 + erf(x / sqrt(2)))`` as Div (or Mul), Erf, Add and two
Muls in any order; the op set has ``gelu`` but no ``erf``, so the five nodes become one ``Gelu``.
The tanh approximation ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`` (GPT-2's
``gelu_new``; ``x**3`` as Pow or as two Muls) becomes ``Gelu(approximate="tanh")``.
``x * HardSigmoid(x)`` with alpha 1/6 and beta 0.5 is ``HardSwish``. ``Where(IsNaN(s), 0, s)``
on a Softmax output ``s`` (PyTorch's scaled-dot-product attention guards fully masked rows so)
is ``s`` itself: a softmax is NaN only where a whole row of scores is -inf or NaN, which an
attention mask that keeps at least one position per row never makes. jax2onnx's window sum
(a 6-D ``Conv`` of ones between two Unsqueezes and a Squeeze, how JAX writes average pooling)
is an ``AveragePool`` times the window size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np


def _scalar(consts: dict[str, np.ndarray], name: str) -> float | None:
    v = consts.get(name)
    if v is None or v.size != 1 or v.dtype.kind not in "fiu":
        return None
    return float(v.reshape(()))


def _near(value: float | None, target: float, tol: float = 1e-4) -> bool:
    return value is not None and abs(value - target) <= tol * max(1.0, abs(target))


def fuse(
    nodes: list[Any], known: dict[str, np.ndarray], outputs: set[str], counter: Counter
) -> list[Any]:
    """Return ``nodes`` with each matched pattern replaced by one node (in place of its last).

    ``known`` holds the initializers' values (scalars are looked up there and in Constant nodes).
    """
    from onnx import helper, numpy_helper

    consts: dict[str, np.ndarray] = dict(known)
    producer: dict[str, int] = {}
    users: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            producer[o] = i
        for x in n.input:
            users.setdefault(x, []).append(i)
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    return _fuse(nodes, consts, producer, users, outputs, counter, helper)


def _fuse(nodes, consts, producer, users, outputs, counter, helper):
    import onnx

    skip: set[int] = set()
    replace: dict[int, Any] = {}

    def only_user(name: str) -> int | None:
        u = users.get(name, [])
        return u[0] if len(u) == 1 and name not in outputs else None

    def other(n: Any, name: str) -> str:
        return n.input[1] if n.input[0] == name else n.input[0]

    def is_scalar(name: str, target: float) -> bool:
        return _near(_scalar(consts, name), target)

    for i, n in enumerate(nodes):
        if n.op_type == "Erf" and i not in skip:
            src = producer.get(n.input[0])
            if src is None:
                continue
            d = nodes[src]
            if d.op_type == "Div" and is_scalar(d.input[1], 2**0.5):
                x = d.input[0]
            elif d.op_type == "Mul" and (
                is_scalar(d.input[1], 0.5**0.5) or is_scalar(d.input[0], 0.5**0.5)
            ):
                x = d.input[0] if is_scalar(d.input[1], 0.5**0.5) else d.input[1]
            else:
                continue
            if only_user(d.output[0]) != i:
                continue
            a_i = only_user(n.output[0])
            if (
                a_i is None
                or nodes[a_i].op_type != "Add"
                or not is_scalar(other(nodes[a_i], n.output[0]), 1.0)
            ):
                continue
            m1_i = only_user(nodes[a_i].output[0])
            if m1_i is None or nodes[m1_i].op_type != "Mul":
                continue
            m1 = nodes[m1_i]
            f = other(m1, nodes[a_i].output[0])
            chain = [src, i, a_i, m1_i]
            if f == x:  # x * (1 + erf) then * 0.5
                m2_i = only_user(m1.output[0])
                if (
                    m2_i is None
                    or nodes[m2_i].op_type != "Mul"
                    or not is_scalar(other(nodes[m2_i], m1.output[0]), 0.5)
                ):
                    continue
                last = m2_i
            elif is_scalar(f, 0.5):  # 0.5 * (1 + erf) then * x
                m2_i = only_user(m1.output[0])
                if (
                    m2_i is None
                    or nodes[m2_i].op_type != "Mul"
                    or other(nodes[m2_i], m1.output[0]) != x
                ):
                    continue
                last = m2_i
            else:  # (x * 0.5) * (1 + erf)
                h_i = producer.get(f)
                if h_i is None or only_user(f) != m1_i or nodes[h_i].op_type != "Mul":
                    continue
                h = nodes[h_i]
                if not (x in h.input and is_scalar(other(h, x), 0.5)):
                    continue
                chain.append(h_i)
                last = m1_i
                chain.remove(m1_i)
            skip.update(c for c in chain if c != last)
            replace[last] = helper.make_node(
                "Gelu", [x], [nodes[last].output[0]], name=nodes[last].name or f"gelu_{i}"
            )
            counter["gelu(erf)"] += 1
        elif n.op_type == "Tanh" and i not in skip:
            match = _tanh_gelu(nodes, i, consts, producer, only_user, other, is_scalar)
            if match is None:
                continue
            x, chain, last = match
            skip.update(c for c in chain if c != last)
            replace[last] = helper.make_node(
                "Gelu",
                [x],
                [nodes[last].output[0]],
                name=nodes[last].name or f"gelu_tanh_{i}",
                approximate="tanh",
            )
            counter["gelu(tanh)"] += 1
        elif n.op_type == "IsNaN" and i not in skip:
            s_i = producer.get(n.input[0])
            w_i = only_user(n.output[0])
            if s_i is None or w_i is None or nodes[s_i].op_type != "Softmax":
                continue
            w = nodes[w_i]
            if (
                w.op_type != "Where"
                or list(w.input[:1]) != [n.output[0]]
                or w.input[2] != n.input[0]
                or not is_scalar(w.input[1], 0.0)
            ):
                continue
            skip.add(i)
            replace[w_i] = helper.make_node(
                "Identity", [n.input[0]], [w.output[0]], name=w.name or f"nan_guard_{i}"
            )
            counter["where(isnan(softmax))"] += 1
        elif n.op_type == "HardSigmoid" and i not in skip:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if not (_near(attrs.get("alpha", 0.2), 1 / 6) and _near(attrs.get("beta", 0.5), 0.5)):
                continue
            x = n.input[0]
            m_i = only_user(n.output[0])
            if m_i is None or nodes[m_i].op_type != "Mul" or other(nodes[m_i], n.output[0]) != x:
                continue
            skip.add(i)
            replace[m_i] = helper.make_node(
                "HardSwish", [x], [nodes[m_i].output[0]], name=nodes[m_i].name or f"hswish_{i}"
            )
            counter["hard_swish(x*hard_sigmoid)"] += 1
        elif n.op_type == "Conv" and i not in skip:
            match = _sum_pool_6d(nodes, i, consts, producer, only_user, helper)
            if match is None:
                continue
            chain, last, new = match
            skip.update(c for c in chain if c != last)
            replace[last] = new
            counter["sum_pool(6-D conv)"] += 1
    out: list[Any] = []
    for i, n in enumerate(nodes):
        if i in skip:
            continue
        r = replace.get(i, n)
        out.extend(r if isinstance(r, list) else [r])
    return out


def _axes_of(node, consts) -> list[int] | None:
    """The axes of an Unsqueeze/Squeeze: its second input (opset 13+) or attribute."""
    import onnx

    if len(node.input) > 1 and node.input[1]:
        v = consts.get(node.input[1])
        return None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
    for a in node.attribute:
        if a.name == "axes":
            return [int(x) for x in onnx.helper.get_attribute_value(a)]
    return None


def _sum_pool_6d(nodes, c_i, consts, producer, only_user, helper):
    """jax2onnx's ``reduce_window`` sum (how JAX writes average pooling, before its Mul by
    1/(kh*kw)): ``Unsqueeze(x, 0)``, ``Unsqueeze(., 1)`` -> ``(1, 1, N, C, H, W)``, a 6-D
    ``Conv`` with an all-ones ``(1, 1, 1, 1, kh, kw)`` kernel, strides ``(1, 1, sh, sw)``, then
    ``Squeeze(., [0, 1])``. That is a window sum over H and W: an ``AveragePool`` (padding
    counted) times ``kh * kw``. Returns (chain, last, replacement nodes) or None."""
    import onnx

    conv = nodes[c_i]
    if len(conv.input) != 2:
        return None
    kernel = consts.get(conv.input[1])
    if kernel is None or kernel.ndim != 6 or kernel.shape[:4] != (1, 1, 1, 1):
        return None
    if not np.all(kernel == 1):
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    strides = list(attrs.get("strides", [1] * 4))
    pads = list(attrs.get("pads", [0] * 8))
    if (
        attrs.get("group", 1) != 1
        or any(d != 1 for d in attrs.get("dilations", [1] * 4))
        or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "")
        or len(strides) != 4
        or strides[:2] != [1, 1]
        or len(pads) != 8
        or any(pads[a] or pads[a + 4] for a in (0, 1))
    ):
        return None
    # the two Unsqueezes in front (or one with axes [0, 1])
    u2_i = producer.get(conv.input[0])
    if u2_i is None or nodes[u2_i].op_type != "Unsqueeze" or only_user(conv.input[0]) != c_i:
        return None
    chain = [u2_i]
    axes = _axes_of(nodes[u2_i], consts)
    if axes == [1]:
        u1_i = producer.get(nodes[u2_i].input[0])
        if (
            u1_i is None
            or nodes[u1_i].op_type != "Unsqueeze"
            or _axes_of(nodes[u1_i], consts) != [0]
            or only_user(nodes[u2_i].input[0]) != u2_i
        ):
            return None
        chain.append(u1_i)
        x = nodes[u1_i].input[0]
    elif axes == [0, 1]:
        x = nodes[u2_i].input[0]
    else:
        return None
    sq_i = only_user(conv.output[0])
    if sq_i is None or nodes[sq_i].op_type != "Squeeze" or _axes_of(nodes[sq_i], consts) != [0, 1]:
        return None
    kh, kw = int(kernel.shape[4]), int(kernel.shape[5])
    out = nodes[sq_i].output[0]
    name = nodes[sq_i].name or f"sum_pool_{c_i}"
    k_name, avg = f"{out}__window_size", f"{out}__window_mean"
    hw_pads = [pads[2], pads[3], pads[6], pads[7]]  # (top, left, bottom, right)
    new = []
    if hw_pads[0] != hw_pads[2] or hw_pads[1] != hw_pads[3]:
        # zeros added first (a sum counts them as 0), then an unpadded window
        p_name, padded = f"{out}__window_pads", f"{out}__window_padded"
        new += [
            helper.make_node(
                "Constant",
                [],
                [p_name],
                name=f"{name}/pads",
                value=helper.make_tensor(
                    p_name, onnx.TensorProto.INT64, [8], [0, 0, *hw_pads[:2], 0, 0, *hw_pads[2:]]
                ),
            ),
            helper.make_node("Pad", [x, p_name], [padded], name=f"{name}/pad"),
        ]
        x, hw_pads = padded, [0, 0, 0, 0]
    new += [
        helper.make_node(
            "Constant",
            [],
            [k_name],
            name=f"{name}/window_size",
            value=helper.make_tensor(k_name, onnx.TensorProto.FLOAT, [], [float(kh * kw)]),
        ),
        helper.make_node(
            "AveragePool",
            [x],
            [avg],
            name=f"{name}/mean",
            kernel_shape=[kh, kw],
            strides=strides[2:],
            pads=hw_pads,
            count_include_pad=1,
        ),
        helper.make_node("Mul", [avg, k_name], [out], name=name),
    ]
    return [*chain, c_i, sq_i], sq_i, new


def _tanh_gelu(nodes, t_i, consts, producer, only_user, other, is_scalar):
    """Match ``0.5 * x * (1 + tanh(k * (x + c * x**3)))`` around the Tanh at ``t_i``.

    Returns ``(x, chain of node indices, index of the last node)`` or None.
    """
    t = nodes[t_i]
    k_i = producer.get(t.input[0])
    if k_i is None or nodes[k_i].op_type != "Mul" or only_user(t.input[0]) != t_i:
        return None
    k = nodes[k_i]
    if is_scalar(k.input[1], (2 / np.pi) ** 0.5):
        inner = k.input[0]
    elif is_scalar(k.input[0], (2 / np.pi) ** 0.5):
        inner = k.input[1]
    else:
        return None
    a_i = producer.get(inner)
    if a_i is None or nodes[a_i].op_type != "Add" or only_user(inner) != k_i:
        return None
    a = nodes[a_i]
    chain = [a_i, k_i, t_i]
    x = None
    for cand, cube_term in ((a.input[0], a.input[1]), (a.input[1], a.input[0])):
        c_i = producer.get(cube_term)
        if c_i is None or nodes[c_i].op_type != "Mul" or only_user(cube_term) != a_i:
            continue
        c = nodes[c_i]
        cube = c.input[0] if is_scalar(c.input[1], 0.044715) else None
        if cube is None and is_scalar(c.input[0], 0.044715):
            cube = c.input[1]
        if cube is None:
            continue
        p_i = producer.get(cube)
        if p_i is None or only_user(cube) != c_i:
            continue
        p = nodes[p_i]
        if p.op_type == "Pow" and p.input[0] == cand and is_scalar(p.input[1], 3.0):
            x, extra = cand, [c_i, p_i]
        elif p.op_type == "Mul" and cand in p.input:
            sq = other(p, cand)
            q_i = producer.get(sq)
            if (
                q_i is None
                or only_user(sq) != p_i
                or nodes[q_i].op_type != "Mul"
                or list(nodes[q_i].input) != [cand, cand]
            ):
                continue
            x, extra = cand, [c_i, p_i, q_i]
        else:
            continue
        chain += extra
        break
    if x is None:
        return None
    o_i = only_user(t.output[0])
    if (
        o_i is None
        or nodes[o_i].op_type != "Add"
        or not is_scalar(other(nodes[o_i], t.output[0]), 1.0)
    ):
        return None
    chain.append(o_i)
    m_i = only_user(nodes[o_i].output[0])
    if m_i is None or nodes[m_i].op_type != "Mul":
        return None
    m = nodes[m_i]
    f = other(m, nodes[o_i].output[0])
    chain.append(m_i)
    if f == x:  # x * (1 + tanh) then * 0.5
        m2_i = only_user(m.output[0])
        if (
            m2_i is None
            or nodes[m2_i].op_type != "Mul"
            or not is_scalar(other(nodes[m2_i], m.output[0]), 0.5)
        ):
            return None
        chain.append(m2_i)
        return x, chain, m2_i
    if is_scalar(f, 0.5):  # 0.5 * (1 + tanh) then * x
        m2_i = only_user(m.output[0])
        if m2_i is None or nodes[m2_i].op_type != "Mul" or other(nodes[m2_i], m.output[0]) != x:
            return None
        chain.append(m2_i)
        return x, chain, m2_i
    h_i = producer.get(f)  # (0.5 * x) * (1 + tanh)
    if h_i is None or only_user(f) != m_i or nodes[h_i].op_type != "Mul":
        return None
    h = nodes[h_i]
    if not (x in h.input and is_scalar(other(h, x), 0.5)):
        return None
    chain.append(h_i)
    return x, chain, m_i
