"""Control flow: an ONNX ``Loop`` whose trip count (and condition) is known at import time is
unrolled: its body is mapped once per iteration, like straight-line code, with the iteration
number a constant (so ``Gather(sequence, i)`` is a slice) and the loop-carried values passed from
one copy to the next. Scan outputs are stacked along a new leading axis. This is how jax2onnx
writes ``lax.scan`` (an LSTM's time loop); a loop whose condition depends on the input, or that
would unroll into more than :data:`MAX_UNROLLED_NODES` nodes, is a clear error.
"""

from __future__ import annotations

import numpy as np

from dlbench.model.onnx_import.handlers import _fail, handles
from dlbench.model.onnx_import.values import Act, Const

#: Body nodes x iterations a Loop may unroll into (a hostile trip count stops here).
MAX_UNROLLED_NODES = 200_000


def _scalar(cv, name: str, label: str, what: str):
    v = cv.const(name, label, what)
    a = np.asarray(v)
    if a.size != 1:
        raise _fail(label, "Loop", f"expected a scalar {what}. Received shape {a.shape}")
    return a.reshape(())


@handles("Loop")
def _loop(cv, n, label, attrs):
    from onnx import helper

    body = attrs["body"]
    trips = None if not n.input[0] else int(_scalar(cv, n.input[0], label, "trip count M"))
    go = (
        True if len(n.input) < 2 or not n.input[1] else bool(_scalar(cv, n.input[1], label, "cond"))
    )
    if trips is None:
        raise _fail(label, "Loop", "a loop without a trip count (a while loop) is not supported")
    if trips < 0 or trips * max(len(body.node), 1) > MAX_UNROLLED_NODES:
        raise _fail(
            label,
            "Loop",
            f"expected a trip count that unrolls into at most {MAX_UNROLLED_NODES} nodes. "
            f"Received: {trips} iterations of {len(body.node)} body nodes",
        )
    carried_in = list(n.input[2:])
    n_carried = len(carried_in)
    b_in, b_out = [i.name for i in body.input], [o.name for o in body.output]
    if len(b_in) != 2 + n_carried or len(b_out) < 1 + n_carried:
        raise _fail(
            label,
            "Loop",
            f"expected a body with {2 + n_carried} inputs and at least {1 + n_carried} outputs. "
            f"Received {len(b_in)} and {len(b_out)}",
        )
    from onnx import numpy_helper

    for t in body.initializer:
        cv.values[t.name] = Const(numpy_helper.to_array(t))
    for bn in body.node:
        for x in bn.input:
            cv.consumers[x] += 1
    for o in b_out:
        cv.consumers[o] += 1
    state = [cv.get(x, label) for x in carried_in]
    scans: list[list] = [[] for _ in b_out[1 + n_carried :]]
    for it in range(trips):
        if not go:
            break
        cv.values[b_in[0]] = Const(np.array(it, np.int64))
        cv.values[b_in[1]] = Const(np.array(True))
        for name, v in zip(b_in[2:], state):
            cv.values[name] = v
        for k, bn in enumerate(body.node):
            cv._node(bn, k, prefix=f"{label}.{it}")
        cond = cv.get(b_out[0], label)
        if not isinstance(cond, Const):
            raise _fail(
                label,
                "Loop",
                "the loop condition depends on the input; only loops whose iterations are known "
                "at import time are supported",
            )
        go = bool(np.asarray(cond.value).reshape(-1)[0])
        state = [cv.get(o, label) for o in b_out[1 : 1 + n_carried]]
        for acc, o in zip(scans, b_out[1 + n_carried :]):
            acc.append(cv.get(o, label))
    outs = list(state)
    for k, acc in enumerate(scans):
        outs.append(_stack(cv, n, label, acc, k, helper))
    return outs


def _stack(cv, n, label, values: list, k: int, helper):
    """A scan output: the per-iteration values stacked along a new axis 0 (an Unsqueeze of each
    and a Concat, through their own handlers)."""
    if not values:
        raise _fail(label, "Loop", "a scan output of a loop that runs no iteration")
    if all(isinstance(v, Const) for v in values):
        return Const(np.stack([np.asarray(v.value) for v in values]))
    axes = f"{label}.scan{k}.axes"
    cv.values[axes] = Const(np.array([0], np.int64))
    parts = []
    for i, v in enumerate(values):
        src, dst = f"{label}.scan{k}.in{i}", f"{label}.scan{k}.{i}"
        cv.values[src] = v
        unsq = helper.make_node("Unsqueeze", [src, axes], [dst], name=dst)
        cv.consumers[dst] += 1
        cv._node(unsq, i)
        parts.append(dst)
    out = f"{label}.scan{k}"
    cat = helper.make_node("Concat", parts, [out], name=out, axis=0)
    cv._node(cat, 0)
    v = cv.values[out]
    assert isinstance(v, (Act, Const))
    return v
