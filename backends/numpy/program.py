"""The reference's execution program: a spec's nodes compiled once into steps that run fast,
still in float64 and still with the op functions of :mod:`dlbench.backends.numpy.ops`.

What compiling changes (nothing else: every op is the table's function):

- **Batch norm folded** into the convolution before it (when that convolution's output is read by
  the batch norm only): ``W' = W * s``, ``b' = (b - mean) * s + beta`` with
  ``s = gamma / sqrt(var + eps)``, in float64 (inference batch norm is that affine map, so the
  fold is exact up to float64 rounding: ``tests/reference_ops/test_program.py`` holds it to
  1e-12 of the unfolded computation).
- **Epilogues**: a convolution's only reader, when it is ``relu``/``relu6`` or a residual ``add``
  (whose other operand exists already), runs on each block of the convolution's output right
  after its matrix product, in place, while the block is in cache.
- **In place**: ``relu``, ``relu6``, ``add``, ``mul`` and ``div`` write into an input nothing reads
  afterwards (static liveness, views counted as their base: a value made by a layout op such as
  ``reshape`` or ``slice`` keeps its source alive), never into a graph input.
- **Freed**: each value is dropped after its last reader (the plain interpreter keeps them all).
- **Micro-batches on threads**: the batch is cut into micro-batches whose largest activation is
  about :data:`MICRO_BATCH_BYTES` (so a block's activations stay in cache from op to op) and
  they run on ``threads`` threads, the BLAS held at one thread meanwhile (NumPy releases the GIL
  in its copies, products and elementwise loops; a multi-threaded BLAS on these small products
  spends more time synchronising than computing: 15 s of CPU instead of 1.9 s for resnet20 on
  256 images, measured on a loaded machine). Every op of the op set works sample by
  sample (no axis attribute may name the batch axis, batch norm uses its running statistics), so
  a micro-batch's outputs are the batch's rows.

Example:
    >>> import numpy as np, dlbench
    >>> from dlbench.backends.numpy.program import Program
    >>> spec = dlbench.zoo.get("mlp")
    >>> nodes = spec.resolved()
    >>> params = {rn.name: {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
    ...           for rn in nodes}
    >>> prog = Program(nodes, params, [spec.inputs[0].name], list(spec.outputs), threads=1)
    >>> prog({spec.inputs[0].name: np.zeros((2, 1, 8, 8))})[0].shape
    (2, 10)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench.backends.numpy.ops import OPS, conv2d_apply, conv2d_matrices
from dlbench.model.spec import ResolvedNode

#: Bytes of the largest activation of one micro-batch (see the module docstring): a few MiB,
#: within the L2/L3 caches with its neighbours.
MICRO_BATCH_BYTES = 2 << 20

#: Ops whose output is a new array, never a view of an input (anything else may alias its
#: inputs: ``reshape``, ``flatten``, ``transpose``, ``slice``, ``dropout``...).
FRESH_OPS = frozenset(
    {
        "conv2d", "batch_norm", "dense", "relu", "relu6", "sigmoid", "tanh", "silu",
        "hard_swish", "sqrt", "reciprocal", "erf", "softmax", "gelu", "global_avg_pool",
        "concat", "matmul", "reduce_mean", "pad", "add", "mul", "div", "max_pool", "avg_pool",
        "layer_norm", "multi_head_attention", "upsample", "lstm", "embedding",
    }
)  # fmt: skip

_UNARY_INPLACE: dict[str, Callable[[np.ndarray], Any]] = {
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "relu6": lambda x: np.clip(x, 0.0, 6.0, out=x),
}
_BINARY_UFUNC = {"add": np.add, "mul": np.multiply, "div": np.true_divide}


def fold_batch_norm(conv: Mapping[str, np.ndarray], bn: Mapping[str, np.ndarray], eps: float):
    """``(weight, bias)`` of the convolution followed by inference batch norm, in float64."""
    scale = bn["weight"] / np.sqrt(bn["var"] + eps)
    w = conv["weight"] * scale[:, None, None, None]
    b = conv["bias"] if "bias" in conv else np.zeros_like(scale)
    return w, (b - bn["mean"]) * scale + bn["bias"]


@dataclass
class Step:
    """One step: ``out = fn(inputs)``; ``inplace`` is the input it may overwrite (or None),
    ``frees`` the values dropped after it. ``nodes`` are the spec nodes it computes."""

    out: str
    ins: list[str]
    fn: Callable[[list[np.ndarray]], np.ndarray]
    nodes: list[str]
    fresh: bool
    inplace_fn: Callable[[list[np.ndarray]], np.ndarray] | None = None
    inplace_arg: int | None = None
    inplace: int | None = None
    frees: tuple[str, ...] = field(default=())


def _plain(rn: ResolvedNode, p: Mapping[str, np.ndarray]) -> Step:
    fn = OPS.lookup(rn)
    step = Step(rn.name, list(rn.inputs), lambda xs: fn(xs, p, rn), [rn.name], rn.op in FRESH_OPS)
    if rn.op in _UNARY_INPLACE and tuple(rn.in_shapes[0]) == tuple(rn.out_shape):
        unary = _UNARY_INPLACE[rn.op]
        step.inplace_fn, step.inplace_arg = (lambda xs: unary(xs[0])), 0
    elif rn.op in _BINARY_UFUNC and tuple(rn.in_shapes[0]) == tuple(rn.out_shape):
        ufunc = _BINARY_UFUNC[rn.op]
        if len(rn.inputs) == 2:
            step.inplace_fn = lambda xs: ufunc(xs[0], xs[1], out=xs[0])
        else:
            other = p["other"]
            step.inplace_fn = lambda xs: ufunc(xs[0], other, out=xs[0])
        step.inplace_arg = 0
    return step


def _conv_step(
    conv: ResolvedNode,
    w: np.ndarray,
    bias: np.ndarray | None,
    epilogue: list[tuple[str, int]],
    ins: list[str],
    out: str,
    nodes: list[str],
) -> Step:
    mats = conv2d_matrices(w, conv.attrs["groups"])

    def run(xs: list[np.ndarray]) -> np.ndarray:
        if not epilogue:
            return conv2d_apply(xs[0], w, mats, bias, conv)
        others = [xs[j].transpose(0, 2, 3, 1) for j in range(1, len(xs))]  # NCHW -> NHWC views

        def epi(blk: np.ndarray, index: tuple[slice, slice]) -> None:
            for kind, j in epilogue:
                if kind == "add":
                    blk += others[j][index]
                elif kind == "relu":
                    np.maximum(blk, 0.0, out=blk)
                else:  # relu6
                    np.clip(blk, 0.0, 6.0, out=blk)

        return conv2d_apply(xs[0], w, mats, bias, conv, epi)

    return Step(out, ins, run, nodes, True)


def compile_steps(
    nodes: Sequence[ResolvedNode],
    params: Mapping[str, Mapping[str, np.ndarray]],
    outputs: Sequence[str],
) -> list[Step]:
    """The fused steps of ``nodes`` (in order): see the module docstring."""
    readers: dict[str, list[ResolvedNode]] = {}
    made_at: dict[str, int] = {}
    for i, rn in enumerate(nodes):
        made_at[rn.name] = i
        for name in rn.inputs:
            readers.setdefault(name, []).append(rn)
    keep = set(outputs)

    def only_reader(name: str) -> ResolvedNode | None:
        rs = readers.get(name, [])
        return rs[0] if len(rs) == 1 and name not in keep else None

    fused: set[str] = set()
    steps: list[Step] = []
    for i, rn in enumerate(nodes):
        if rn.name in fused:
            continue
        if rn.op != "conv2d":
            steps.append(_plain(rn, params[rn.name]))
            continue
        p = params[rn.name]
        w, bias = p["weight"], p.get("bias")
        value, names, ins, epilogue = rn.name, [rn.name], [rn.inputs[0]], []
        nxt = only_reader(value)
        if nxt is not None and nxt.op == "batch_norm":
            w, bias = fold_batch_norm(p, params[nxt.name], nxt.attrs["eps"])
            value = nxt.name
            names.append(value)
        while (nxt := only_reader(value)) is not None:
            if nxt.op in ("relu", "relu6"):
                epilogue.append((nxt.op, 0))
            elif (
                nxt.op == "add"
                and len(nxt.inputs) == 2
                and nxt.inputs.count(value) == 1
                and tuple(nxt.out_shape) == tuple(rn.out_shape)
            ):
                other = nxt.inputs[1 - nxt.inputs.index(value)]
                if made_at.get(other, -1) >= i:  # computed after the convolution: not yet there
                    break
                ins.append(other)
                epilogue.append(("add", len(ins) - 2))
            else:
                break
            value = nxt.name
            names.append(value)
        fused.update(names)
        steps.append(_conv_step(rn, w, bias, epilogue, ins, value, names))
    return steps


def plan_memory(steps: list[Step], inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Fill each step's ``frees`` and ``inplace`` (static liveness, views counted as their base)."""
    roots: dict[str, frozenset[str]] = {name: frozenset([name]) for name in inputs}
    for st in steps:
        if st.fresh:
            roots[st.out] = frozenset([st.out])
        else:
            roots[st.out] = frozenset().union(*(roots[i] for i in st.ins))
    last: dict[str, int] = {}
    for k, st in enumerate(steps):
        for name in st.ins:
            last[name] = k
    end = len(steps)
    for name in outputs:
        last[name] = end  # read after the last step
    root_last: dict[str, int] = {}
    for name, rs in roots.items():
        for r in rs:
            root_last[r] = max(root_last.get(r, -1), last.get(name, -1))
    frees: dict[int, list[str]] = {}
    for k, st in enumerate(steps):
        last.setdefault(st.out, k)  # never read: dropped at once
    for name, k in last.items():
        if k < end and name not in inputs:
            frees.setdefault(k, []).append(name)
    for k, st in enumerate(steps):
        st.frees = tuple(sorted(set(frees.get(k, ()))))
        if st.inplace_fn is None:
            continue
        name = st.ins[st.inplace_arg]
        rs = roots[name]
        if (
            len(rs) == 1
            and not (rs & set(inputs))
            and root_last[next(iter(rs))] == k
            and st.ins.count(name) == 1
        ):
            st.inplace = st.inplace_arg


_BLAS: Any = None
_BLAS_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}  # one pool per thread count, shared by all programs


def _pool(threads: int) -> ThreadPoolExecutor:
    with _BLAS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="dlbench-ref")
        return _POOLS[threads]


def _blas() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded (None without threadpoolctl)."""
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - scikit-learn brings it
                _BLAS = False
            else:
                _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS or None


def blas_threads() -> int | None:
    """Threads of the BLAS library NumPy calls, or None when unknown."""
    ctl = _blas()
    counts = [lib.num_threads for lib in ctl.lib_controllers] if ctl is not None else []
    return max(counts) if counts else None


class Program:
    """A compiled spec: ``program(feeds) -> outputs`` (a tuple, one array per graph output).

    Args:
        nodes: The spec's resolved nodes, in topological order.
        params: Float64 weights by node name.
        inputs: Graph input names.
        outputs: Graph output names.
        threads: Micro-batches run at once, each with a one-thread BLAS (the BLAS is held at
            one thread while the program runs, and given its threads back after).
        micro_batch_bytes: See :data:`MICRO_BATCH_BYTES`.
    """

    def __init__(
        self,
        nodes: Sequence[ResolvedNode],
        params: Mapping[str, Mapping[str, np.ndarray]],
        inputs: Sequence[str],
        outputs: Sequence[str],
        threads: int = 1,
        micro_batch_bytes: int = MICRO_BATCH_BYTES,
    ) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"Expected `threads` to be a positive int. Received: {threads!r}")
        self.inputs, self.outputs, self.threads = list(inputs), list(outputs), threads
        self.steps = compile_steps(nodes, params, outputs)
        plan_memory(self.steps, self.inputs, self.outputs)
        largest = max([math.prod(rn.out_shape) for rn in nodes] or [1])
        self.micro_batch = max(1, micro_batch_bytes // (8 * max(1, largest)))

    def run_chunk(self, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """The steps on one (micro-)batch, in this thread."""
        env = dict(feeds)
        for st in self.steps:
            xs = [env[i] for i in st.ins]
            if st.inplace is not None and _writable(xs[st.inplace]):
                env[st.out] = st.inplace_fn(xs)
            else:
                env[st.out] = st.fn(xs)
            del xs
            for name in st.frees:
                del env[name]
        return tuple(env[o] for o in self.outputs)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        nb = len(feeds[self.inputs[0]])
        size = self.micro_batch
        if self.threads > 1:  # at least one micro-batch per thread
            size = min(size, -(-nb // self.threads))
        ctl = _blas()
        if ctl is not None and any(lib.num_threads != 1 for lib in ctl.lib_controllers):
            with ctl.limit(limits=1):
                return self._run(feeds, nb, size)
        return self._run(feeds, nb, size)

    def _run(self, feeds: Mapping[str, np.ndarray], nb: int, size: int) -> tuple[np.ndarray, ...]:
        if nb <= size:
            return self.run_chunk(feeds)
        bounds = [(s, min(nb, s + size)) for s in range(0, nb, size)]

        def one(b: tuple[int, int]) -> tuple[np.ndarray, ...]:
            return self.run_chunk({k: v[b[0] : b[1]] for k, v in feeds.items()})

        if self.threads == 1:
            parts = [one(b) for b in bounds]
        else:
            parts = list(_pool(self.threads).map(one, bounds))
        return tuple(np.concatenate(ys) for ys in zip(*parts))


def _writable(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.writeable
