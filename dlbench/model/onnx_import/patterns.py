"""Subgraph patterns fused into one op before mapping: the erf GELU and x * HardSigmoid(x).

Exporters write ``GELU(x) = x * 0.5 * (1 + erf(x / sqrt(2)))`` as Div (or Mul), Erf, Add and two
Muls in any order; the op set has ``gelu`` but no ``erf``, so the five nodes become one ``Gelu``.
``x * HardSigmoid(x)`` with alpha 1/6 and beta 0.5 is ``HardSwish``.
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
    return [replace.get(i, n) for i, n in enumerate(nodes) if i not in skip]
