"""One op table per backend: a function per op of the op set, in one of two fixed signatures.

Every backend's ``ops.py`` defines ``OPS``, a table keyed exactly by the op names of
:data:`dlbench.model.ops.OPS` (registering a name outside the op set, or the same name twice,
fails at import). Two families:

- :class:`InterpreterTable` (numpy, jax, tensorflow): the graph is executed (or traced) op by op;
  each function is called as ``fn(xs, params, node) -> value`` with the node's input values, its
  weights in the backend's own form, and the :class:`~dlbench.model.spec.ResolvedNode` (its
  ``attrs`` and static shapes).
- :class:`EmitterTable` (torch fx, onnxruntime): the graph is generated once; each function is
  called as ``fn(graph, xs, node) -> output`` with the backend's graph builder, the handles of
  the node's inputs in that graph, and the node; it adds what computes the node and returns
  the handle of its output.

Functions are registered by decorator or by item assignment::

    OPS = InterpreterTable("NumPy")

    @OPS.register("dense")
    def dense(xs, params, node):
        return xs[0] @ params["weight"].T

    OPS["relu"] = lambda xs, params, node: np.maximum(xs[0], 0.0)

``run`` walks a resolved plan with the table, so no backend writes that loop itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

from dlbench.errors import BackendError
from dlbench.model.ops import OPS as OP_SET
from dlbench.model.spec import ResolvedNode

#: ``fn(xs, params, node) -> value``
Interpret = Callable[[list[Any], Mapping[str, Any], ResolvedNode], Any]
#: ``fn(graph, xs, node) -> output``
Emit = Callable[[Any, list[Any], ResolvedNode], Any]


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, else the first free ``base_1``, ``base_2``, ...; recorded in ``taken``.

    For emitters, whose graphs need a unique name per node, attribute or tensor.
    """
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class OpTable(Mapping[str, Callable[..., Any]]):
    """A backend's functions by op name; only op-set names, each once.

    Args:
        framework: Display name used in errors, e.g. ``"TensorFlow"``.
    """

    family: ClassVar[str] = ""
    signature: ClassVar[str] = ""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self._fns: dict[str, Callable[..., Any]] = {}

    # -- registration --------------------------------------------------------------------------

    def __setitem__(self, name: str, fn: Callable[..., Any]) -> None:
        if name not in OP_SET:
            raise ValueError(
                f"{self.framework} op table: expected an op of the op set "
                f"(dlbench.model.ops.OPS). Received: {name!r}"
            )
        if name in self._fns:
            raise ValueError(f"{self.framework} op table: op {name!r} is registered twice")
        if not callable(fn):
            raise TypeError(
                f"{self.framework} op table: expected a function for op {name!r}. "
                f"Received: {type(fn).__name__}"
            )
        self._fns[name] = fn

    def register(self, *names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the function under each op name given."""

        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            for name in names:
                self[name] = fn
            return fn

        return deco

    # -- Mapping -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._fns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fns)

    def __len__(self) -> int:
        return len(self._fns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.framework!r}, {len(self)}/{len(OP_SET)} ops)"

    # -- checks --------------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """Ops of the op set this table has no function for (sorted)."""
        return sorted(set(OP_SET) - set(self._fns))

    def lookup(self, node: ResolvedNode) -> Callable[..., Any]:
        try:
            return self._fns[node.op]
        except KeyError:
            raise BackendError(
                f"Node {node.name!r}: op {node.op!r} has no {self.framework} implementation"
            ) from None

    def check(self, plan: Iterable[ResolvedNode]) -> None:
        """Raise :class:`BackendError` naming the first node whose op the table lacks."""
        for node in plan:
            self.lookup(node)


class InterpreterTable(OpTable):
    """Ops called as ``fn(xs, params, node) -> value``."""

    family = "interpreter"
    signature = "fn(xs, params, node) -> value"

    def run(
        self,
        plan: Sequence[ResolvedNode],
        env: MutableMapping[str, Any],
        params: Mapping[str, Mapping[str, Any]],
    ) -> MutableMapping[str, Any]:
        """Compute every node of ``plan`` into ``env`` (which holds the graph inputs).

        ``params`` maps a node name to that node's weights in the backend's form. Call
        :meth:`check` on the plan once first (at build time): this loop runs per forward pass
        or trace and does no checking of its own.
        """
        fns = self._fns
        for rn in plan:
            env[rn.name] = fns[rn.op]([env[i] for i in rn.inputs], params[rn.name], rn)
        return env


class EmitterTable(OpTable):
    """Ops called as ``fn(graph, xs, node) -> output``."""

    family = "emitter"
    signature = "fn(graph, xs, node) -> output"

    def run(
        self, plan: Sequence[ResolvedNode], env: MutableMapping[str, Any], graph: Any
    ) -> MutableMapping[str, Any]:
        """Emit every node of ``plan`` into ``graph``; ``env`` maps names to graph handles."""
        for rn in plan:
            env[rn.name] = self.lookup(rn)(graph, [env[i] for i in rn.inputs], rn)
        return env
