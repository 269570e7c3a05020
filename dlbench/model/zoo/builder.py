"""A small helper to write ModelSpecs by hand, with seeded NumPy initialisation.

Initialisation is framework-independent (``numpy.random.default_rng(seed)``), so the same seed
gives the same weights on every machine and every backend. Batch-norm running statistics and
affine parameters are drawn at random (not 0/1) so that an untrained model still exercises every
part of the arithmetic: a layout or epsilon bug in a backend shows up in parity.

Example:
    >>> b = GraphBuilder("tiny", (1, 8, 8), seed=0)
    >>> y = b.dense(b.flatten(b.input), 10, name="fc")
    >>> b.build([y]).stats()["params"]
    650
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlbench.model.ops import Shape, check_node
from dlbench.model.spec import ModelSpec, Node, TensorInfo


class GraphBuilder:
    """Accumulates nodes and parameters; tracks per-sample shapes as it goes.

    Args:
        name: Model name.
        input_shape: Per-sample input shape, e.g. ``(3, 32, 32)``.
        seed: Seed of the NumPy generator used for every parameter.
        input_dtype: ``"float32"``, or ``"int64"`` for token ids (read by ``embedding``).
    """

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, ...],
        seed: int = 0,
        input_dtype: str = "float32",
    ) -> None:
        self.name = name
        self.input_dtype = input_dtype
        self.rng = np.random.default_rng(seed)
        self.input = "input"
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self._shapes: dict[str, Shape] = {self.input: tuple(int(d) for d in input_shape)}
        self._used: dict[str, int] = {}

    # -- basics --------------------------------------------------------------------------------

    def shape(self, x: str) -> Shape:
        return self._shapes[x]

    def unique(self, prefix: str) -> str:
        n = self._used.get(prefix, 0)
        self._used[prefix] = n + 1
        return prefix if n == 0 and prefix not in self._shapes else f"{prefix}_{n}"

    def param(self, name: str, array: np.ndarray) -> str:
        if name in self.params:
            raise ValueError(f"parameter {name!r} defined twice")
        self.params[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def add(
        self,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        params: dict[str, np.ndarray] | None = None,
        name: str | None = None,
    ) -> str:
        """Append a node; ``params`` maps role -> array (stored as ``<name>.<role>``)."""
        name = self.unique(name or op)
        roles = {r: self.param(f"{name}.{r}", a) for r, a in (params or {}).items()}
        node = Node(name, op, inputs, attrs or {}, roles)
        _, out = check_node(
            name,
            op,
            len(inputs),
            node.attrs,
            roles,
            [self._shapes[i] for i in inputs],
            {r: self.params[p].shape for r, p in roles.items()},
        )
        self.nodes.append(node)
        self._shapes[name] = out
        return name

    def build(self, outputs: list[str], metadata: dict[str, Any] | None = None) -> ModelSpec:
        spec = ModelSpec(
            self.name,
            [TensorInfo(self.input, (None, *self._shapes[self.input]), self.input_dtype)],
            outputs,
            self.nodes,
            self.params,
            metadata,
        )
        return spec.validate()

    # -- initialisers --------------------------------------------------------------------------

    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)

    def uniform(self, shape: tuple[int, ...], bound: float) -> np.ndarray:
        return self.rng.uniform(-bound, bound, shape)

    def xavier(self, shape: tuple[int, int]) -> np.ndarray:
        return self.uniform(shape, math.sqrt(6.0 / (shape[0] + shape[1])))

    # -- layers --------------------------------------------------------------------------------

    def conv(
        self,
        x: str,
        out: int,
        k: int,
        stride: int = 1,
        padding: Any = None,
        groups: int = 1,
        bias: bool = False,
        dilation: int = 1,
        name: str | None = None,
    ) -> str:
        cin = self.shape(x)[0]
        fan_in = cin // groups * k * k
        params = {"weight": self.he_normal((out, cin // groups, k, k), fan_in)}
        if bias:
            params["bias"] = self.uniform((out,), 1 / math.sqrt(fan_in))
        pad = (k // 2) * dilation if padding is None else padding
        attrs = {"stride": stride, "padding": pad, "groups": groups, "dilation": dilation}
        return self.add("conv2d", [x], attrs, params, name or "conv")

    def bn(self, x: str, gamma: tuple[float, float] = (0.8, 1.2), name: str | None = None) -> str:
        c = self.shape(x)[0]
        params = {
            "weight": self.rng.uniform(*gamma, c),
            "bias": self.rng.normal(0, 0.1, c),
            "mean": self.rng.normal(0, 0.1, c),
            "var": self.rng.uniform(0.5, 1.5, c),
        }
        return self.add("batch_norm", [x], {"eps": 1e-5}, params, name or "bn")

    def dense(
        self, x: str, out: int, bias: bool = True, init: str = "uniform", name: str | None = None
    ) -> str:
        fin = self.shape(x)[-1]
        if init == "xavier":
            params = {"weight": self.xavier((out, fin))}
        else:
            params = {"weight": self.uniform((out, fin), 1 / math.sqrt(fin))}
        if bias:
            params["bias"] = self.uniform((out,), 1 / math.sqrt(fin))
        return self.add("dense", [x], {}, params, name or "dense")

    def act(self, x: str, op: str = "relu", name: str | None = None, **attrs: Any) -> str:
        return self.add(op, [x], attrs, None, name or op)

    def flatten(self, x: str) -> str:
        return self.add("flatten", [x])

    def ln(self, x: str, eps: float = 1e-6, name: str | None = None) -> str:
        d = self.shape(x)[-1]
        params = {
            "weight": self.rng.uniform(0.8, 1.2, d),
            "bias": self.rng.normal(0, 0.05, d),
        }
        return self.add("layer_norm", [x], {"eps": eps}, params, name or "ln")
