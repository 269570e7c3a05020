"""ModelSpec ops as PyTorch modules and functions, emitted into a ``torch.fx`` graph.

An emitter op table (:class:`~dlbench.backends.common.optable.EmitterTable`): each function,
called as ``fn(emitter, xs, node)``, adds the node's layer (an ``nn.Module`` holding its weights, copied once) to
the root module and the call to the fx graph, so the built model is an ordinary
``fx.GraphModule``: real ``nn.Module`` code (printable with ``print(model.code)``), no per-op
interpreter loop at run time, and a clean target for ``torch.compile``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from dlbench.backends.common.optable import EmitterTable, unique_name
from dlbench.model.spec import ResolvedNode

OPS = EmitterTable("PyTorch")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class Emitter:
    """Builds the root module and the fx graph together."""

    def __init__(self) -> None:
        self.root = nn.Module()
        self.graph = fx.Graph()
        self._names: set[str] = set()

    def attr_name(self, node_name: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in node_name) or "node"
        if base[0].isdigit():
            base = "n_" + base
        return unique_name(base, self._names)

    def module(
        self, rn: ResolvedNode, mod: nn.Module, args: tuple, kwargs: dict | None = None
    ) -> fx.Node:
        name = self.attr_name(rn.name)
        self.root.add_module(name, mod)
        return self.graph.call_module(name, args, kwargs or {})

    def buffer(self, rn: ResolvedNode, role: str) -> fx.Node:
        name = self.attr_name(f"{rn.name}_{role}")
        self.root.register_buffer(name, _t(rn.params[role]))
        return self.graph.get_attr(name)

    def call(self, fn: Callable, *args, **kwargs) -> fx.Node:
        return self.graph.call_function(fn, args, kwargs)


def _load(param: torch.Tensor, array: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(_t(array).reshape(param.shape))


@OPS.register("conv2d")
def conv2d(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    w = rn.params["weight"]
    o, cg, kh, kw = w.shape
    a = rn.attrs
    t, b, l, r = a["pads"]  # noqa: E741
    x = xs[0]
    padding = (t, l)
    if t != b or l != r:  # asymmetric ("same" with stride > 1): pad first
        x = e.call(F.pad, x, (l, r, t, b))
        padding = (0, 0)
    conv = nn.Conv2d(
        cg * a["groups"],
        o,
        (kh, kw),
        stride=tuple(a["stride"]),
        padding=padding,
        dilation=tuple(a["dilation"]),
        groups=a["groups"],
        bias="bias" in rn.params,
    )
    _load(conv.weight, w)
    if "bias" in rn.params:
        _load(conv.bias, rn.params["bias"])
    return e.module(rn, conv, (x,))


@OPS.register("batch_norm")
def batch_norm(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    c = rn.in_shapes[0][0]
    cls = nn.BatchNorm2d if len(rn.in_shapes[0]) == 3 else nn.BatchNorm1d
    bn = cls(c, eps=rn.attrs["eps"])
    _load(bn.weight, rn.params["weight"])
    _load(bn.bias, rn.params["bias"])
    _load(bn.running_mean, rn.params["mean"])
    _load(bn.running_var, rn.params["var"])
    return e.module(rn, bn.eval(), (xs[0],))


@OPS.register("dense")
def dense(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    o, i = rn.params["weight"].shape
    lin = nn.Linear(i, o, bias="bias" in rn.params)
    _load(lin.weight, rn.params["weight"])
    if "bias" in rn.params:
        _load(lin.bias, rn.params["bias"])
    return e.module(rn, lin, (xs[0],))


_ACTIVATIONS: dict[str, Callable[[ResolvedNode], nn.Module]] = {
    "relu": lambda rn: nn.ReLU(),
    "relu6": lambda rn: nn.ReLU6(),
    "silu": lambda rn: nn.SiLU(),
    "sigmoid": lambda rn: nn.Sigmoid(),
    "tanh": lambda rn: nn.Tanh(),
    "hard_swish": lambda rn: nn.Hardswish(),
    "gelu": lambda rn: nn.GELU(approximate=rn.attrs["approximate"]),
    "softmax": lambda rn: nn.Softmax(dim=rn.attrs["axis"]),
    "max_pool": lambda rn: nn.MaxPool2d(
        tuple(rn.attrs["kernel_size"]),
        tuple(rn.attrs["stride"]),
        tuple(rn.attrs["padding"]),
        ceil_mode=rn.attrs["ceil_mode"],
    ),
    "avg_pool": lambda rn: nn.AvgPool2d(
        tuple(rn.attrs["kernel_size"]),
        tuple(rn.attrs["stride"]),
        tuple(rn.attrs["padding"]),
        ceil_mode=rn.attrs["ceil_mode"],
        count_include_pad=rn.attrs["count_include_pad"],
    ),
    "upsample": lambda rn: nn.Upsample(
        scale_factor=tuple(float(s) for s in rn.attrs["scale_factor"]), mode="nearest"
    ),
    "flatten": lambda rn: nn.Flatten(1),
}
for _op, _make in _ACTIVATIONS.items():
    OPS[_op] = lambda e, xs, rn, _make=_make: e.module(rn, _make(rn), (xs[0],))

OPS["dropout"] = lambda e, xs, rn: xs[0]
OPS["sqrt"] = lambda e, xs, rn: e.call(torch.sqrt, xs[0])
OPS["reciprocal"] = lambda e, xs, rn: e.call(torch.reciprocal, xs[0])
OPS["erf"] = lambda e, xs, rn: e.call(torch.erf, xs[0])
OPS["reshape"] = lambda e, xs, rn: e.call(torch.reshape, xs[0], (-1, *rn.attrs["shape"]))
OPS["transpose"] = lambda e, xs, rn: e.call(torch.permute, xs[0], tuple(rn.attrs["perm"]))
OPS["global_avg_pool"] = lambda e, xs, rn: e.call(torch.mean, xs[0], dim=(2, 3))
OPS["reduce_mean"] = lambda e, xs, rn: e.call(
    torch.mean, xs[0], dim=tuple(rn.attrs["axes"]), keepdim=rn.attrs["keepdims"]
)
OPS["concat"] = lambda e, xs, rn: e.call(torch.cat, list(xs), dim=rn.attrs["axis"])
OPS["matmul"] = lambda e, xs, rn: e.call(torch.matmul, xs[0], xs[1])


@OPS.register("pad")
def pad(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    p = rn.attrs["pads"]
    # F.pad takes (before, after) pairs from the last axis backwards
    pairs = [v for i in reversed(range(len(p) // 2)) for v in (p[2 * i], p[2 * i + 1])]
    return e.call(F.pad, xs[0], tuple(pairs), value=rn.attrs["value"])


@OPS.register("slice")
def slice_(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    index = (slice(None), *(slice(*s) for s in rn.attrs["slices"]))
    return e.call(operator.getitem, xs[0], index)


def _binary(fn: Callable) -> Callable[..., Any]:
    def emit(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
        other = xs[1] if len(xs) == 2 else e.buffer(rn, "other")
        return e.call(fn, xs[0], other)

    return emit


OPS["add"] = _binary(torch.add)
OPS["mul"] = _binary(torch.mul)
OPS["div"] = _binary(torch.div)


@OPS.register("layer_norm")
def layer_norm(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    ln = nn.LayerNorm(rn.in_shapes[0][-1], eps=rn.attrs["eps"])
    _load(ln.weight, rn.params["weight"])
    _load(ln.bias, rn.params["bias"])
    return e.module(rn, ln, (xs[0],))


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` used as self-attention, returning only the output."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the inner module's forward, not its __call__: this wrapper's own __call__ already ran
        # the hook machinery (no hooks are set on dlbench's inner modules): one call level less
        return self.attn.forward(x, x, x, need_weights=False)[0]


@OPS.register("multi_head_attention")
def multi_head_attention(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    d = rn.in_shapes[0][-1]
    m = SelfAttention(d, rn.attrs["num_heads"])
    _load(m.attn.in_proj_weight, rn.params["in_weight"])
    _load(m.attn.in_proj_bias, rn.params["in_bias"])
    _load(m.attn.out_proj.weight, rn.params["out_weight"])
    _load(m.attn.out_proj.bias, rn.params["out_bias"])
    return e.module(rn, m.eval(), (xs[0],))


class LSTM(nn.Module):
    """One-layer batch-first ``nn.LSTM`` returning the sequence or the last hidden state."""

    def __init__(self, features: int, hidden: int, return_sequences: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm.forward(x)  # as SelfAttention.forward: one call level less
        return y if self.return_sequences else y[:, -1]


@OPS.register("lstm")
def lstm(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    m = LSTM(rn.in_shapes[0][-1], rn.attrs["hidden_size"], rn.attrs["return_sequences"])
    for role in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        _load(getattr(m.lstm, f"{role}_l0"), rn.params[role])
    return e.module(rn, m, (xs[0],))


@OPS.register("embedding")
def embedding(e: Emitter, xs: list[fx.Node], rn: ResolvedNode) -> fx.Node:
    """An ``nn.Embedding`` over the table's rows (a table of rank != 2 flattened to rows and
    the looked-up rows reshaped back); ids in [0, V), checked on the host by ``to_device``."""
    w = rn.params["weight"]
    rows = w.reshape(w.shape[0], -1)
    mod = nn.Embedding(*rows.shape)
    _load(mod.weight, rows)
    y = e.module(rn, mod, (xs[0],))
    if w.ndim != 2:
        y = e.call(torch.reshape, y, (-1, *rn.out_shape))
    return y
