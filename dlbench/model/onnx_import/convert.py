"""The import walk: check the op set, fuse patterns, fold constants, map each node, build the spec."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from dlbench.errors import SpecError
from dlbench.model.onnx_import.load import check_elements, default_opset
from dlbench.model.onnx_import.patterns import fuse
from dlbench.model.onnx_import.values import BATCH, Act, Const
from dlbench.model.ops import INT_PASS_OPS, check_node
from dlbench.model.spec import ModelSpec, Node, TensorInfo

#: Ops that make an activation's *shape* (not its values) a constant.
SHAPE_OPS = {"Shape"}
#: Ops whose output size a folded input decides: checked before evaluation.
_SIZED = {"ConstantOfShape", "Expand", "Tile", "Range"}
#: ONNX element types of a graph input: float (float, float16, double, bfloat16) and integer
#: token ids (int64, int32: both become an int64 spec input).
FLOAT_TYPES = (1, 10, 11, 16)
INT_TYPES = (7, 6)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif hasattr(v, "data_type") and hasattr(v, "dims"):  # TensorProto
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _op_key(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


class Converter:
    """Holds the values, the spec nodes and weights built so far."""

    def __init__(self, model: Any, name: str, input_shape: tuple[int, ...] | None = None) -> None:
        from dlbench.model.onnx_import.handlers import HANDLERS

        self.handlers = HANDLERS
        self.model = model
        self.name = name
        self.opset = default_opset(model)
        self.input_shape = input_shape
        self.values: dict[str, Const | Act] = {}
        self.nodes: list[Node] = []
        self.node_by_name: dict[str, Node] = {}
        self.params: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.consumers: Counter[str] = Counter()
        self.outputs = {o.name for o in model.graph.output}
        self.initializer_names = {t.name for t in model.graph.initializer}
        self.param_cache: dict[tuple[str, str], str] = {}
        self.fixed_batch: int | None = None
        self.mapped: Counter[str] = Counter()
        self.folded = 0
        self.fused: Counter[str] = Counter()
        #: spec tensors holding integer ids (the int64 inputs and their reshapes)
        self.integer: set[str] = set()

    # -- names and emission ----------------------------------------------------------------------

    def unique(self, hint: str, taken: Any) -> str:
        base = re.sub(r"[^A-Za-z0-9_.\-/]", "_", hint or "node").strip("_") or "node"
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    def param(self, hint: str, array: np.ndarray) -> str:
        name = self.unique(hint, self.params)
        self.params[name] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        return name

    def emit(
        self,
        op: str,
        inputs: list[Act],
        attrs: dict[str, Any] | None = None,
        params: dict[str, np.ndarray | str] | None = None,
        hint: str = "",
        b: int = 0,
        like: Act | None = None,
    ) -> Act:
        """Append one spec node (checked now, so a mapping bug names its ONNX node)."""
        name = self.unique(hint or op, self.shapes)
        ints = [a.name for a in inputs if a.name in self.integer]
        if ints and op != "embedding" and op not in INT_PASS_OPS:
            raise SpecError(
                f"Node {hint or op!r}: tensor {ints[0]!r} holds integer token ids; dlbench reads "
                f"them only with a table lookup (Gather on a constant table) after reshapes. "
                f"Received: an op mapped to {op}"
            )
        roles = {}
        for role, arr in (params or {}).items():
            roles[role] = arr if isinstance(arr, str) else self.param(f"{name}.{role}", arr)
        node = Node(name, op, [a.name for a in inputs], attrs or {}, roles)
        _, out = check_node(
            name,
            op,
            len(inputs),
            node.attrs,
            roles,
            [self.shapes[a.name] for a in inputs],
            {r: self.params[p].shape for r, p in roles.items()},
        )
        # an absurd size built from the file (a Resize by 1e6, a Pad of 2**40) stops here
        check_elements(out, f"Node {name!r} ({op}) output")
        self.nodes.append(node)
        self.node_by_name[name] = node
        self.shapes[name] = out
        if ints and op in INT_PASS_OPS:
            self.integer.add(name)
        if like is not None:
            return Act(name, out, like.b, like.p, like.f)
        return Act(name, out, b)

    def reshape(self, x: Act, s: tuple[int, ...], b: int, hint: str, p: int = 0, f: int = 0) -> Act:
        if tuple(s) == tuple(x.s):
            return Act(x.name, x.s, b, p, f)
        y = self.emit("reshape", [x], {"shape": list(s)}, hint=hint, b=b)
        return Act(y.name, y.s, b, p, f)

    # -- value access ----------------------------------------------------------------------------

    def get(self, name: str, node: str) -> Const | Act | None:
        if name == "":
            return None
        try:
            return self.values[name]
        except KeyError:
            raise SpecError(
                f"Node {node!r}: input {name!r} is not defined before it is used (the graph is "
                "not topologically sorted, or the value does not exist)"
            ) from None

    def act(self, name: str, node: str, what: str = "input", merged_ok: bool = False) -> Act:
        v = self.get(name, node)
        if not isinstance(v, Act):
            raise SpecError(
                f"Node {node!r}: expected {what} {name!r} to be computed from the graph input"
            )
        if v.merged and not merged_ok:
            raise SpecError(
                f"Node {node!r}: {what} {name!r} has the batch axis merged with other axes "
                f"(shape {v.shape}); this op does not support that"
            )
        return v

    def const(self, name: str, node: str, what: str = "input") -> np.ndarray | None:
        v = self.get(name, node)
        if v is None:
            return None
        if not isinstance(v, Const):
            raise SpecError(
                f"Node {node!r}: expected {what} {name!r} to be a constant (a weight or a folded "
                "subgraph); it depends on the graph input"
            )
        return v.value

    # -- the walk --------------------------------------------------------------------------------

    def run(self) -> ModelSpec:
        from onnx import numpy_helper

        g = self.model.graph
        for t in g.initializer:
            try:
                self.values[t.name] = Const(numpy_helper.to_array(t))
            except Exception as exc:
                raise SpecError(f"Initializer {t.name!r} cannot be read: {exc}") from None
        known = {k: v.value for k, v in self.values.items() if isinstance(v, Const)}
        nodes = fuse(list(g.node), known, self.outputs, self.fused)
        for n in nodes:
            for i in n.input:
                self.consumers[i] += 1
        for o in self.outputs:
            self.consumers[o] += 1
        inputs = self._inputs()
        self._check_supported(nodes)
        for i, n in enumerate(nodes):
            self._node(n, i)
        return self._build(inputs)

    def _inputs(self) -> list[TensorInfo]:
        infos = []
        real = [i for i in self.model.graph.input if i.name not in self.values]
        if not real:
            raise SpecError("The ONNX graph has no input (every input is an initializer)")
        for k, inp in enumerate(real):
            tt = inp.type.tensor_type
            if not inp.type.HasField("tensor_type") or tt.elem_type not in FLOAT_TYPES + INT_TYPES:
                raise SpecError(
                    f"Graph input {inp.name!r}: expected a float tensor or integer token ids "
                    f"(int64, int32). Received: {inp.type}"
                )
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) < 2:
                raise SpecError(
                    f"Graph input {inp.name!r}: expected a batch axis and at least one more "
                    f"axis. Received shape {dims}"
                )
            if dims[0] is not None:
                self.fixed_batch = int(dims[0])
            rest = dims[1:]
            if k == 0 and self.input_shape is not None and tt.elem_type in INT_TYPES:
                self._check_ids_shape(inp.name, rest)
            if k == 0 and self.input_shape is not None:
                if len(self.input_shape) != len(rest):
                    raise SpecError(
                        f"Expected input_shape of rank {len(rest)} for input {inp.name!r}. "
                        f"Received: {self.input_shape}"
                    )
                rest = [
                    int(a) if b is None or b == 0 else b for a, b in zip(self.input_shape, rest)
                ]
                if any(int(a) != int(b) for a, b in zip(self.input_shape, rest)):
                    raise SpecError(
                        f"input_shape {self.input_shape} contradicts the model's {dims[1:]}"
                    )
            if any(d is None or d < 1 for d in rest):
                raise SpecError(
                    f"Graph input {inp.name!r} has shape {dims}: every axis but the batch axis "
                    "must be a fixed positive size; pass input_shape=(C, H, W) to from_onnx"
                )
            check_elements(rest, f"Graph input {inp.name!r}")
            s = tuple(int(d) for d in rest)
            self.values[inp.name] = Act(inp.name, s, 0)
            self.shapes[inp.name] = s
            dtype = "int64" if tt.elem_type in INT_TYPES else "float32"
            if dtype == "int64":
                self.integer.add(inp.name)
            infos.append(TensorInfo(inp.name, (None, *s), dtype))
        return infos

    def _check_ids_shape(self, name: str, dims: list[int | None]) -> None:
        """``input_shape`` (a dataset's sample shape) against a token-id input: a mismatch says
        what the model takes and how to feed it synthetic ids."""
        want = tuple(self.input_shape or ())
        if len(want) == len(dims) and all(d in (None, 0, w) for d, w in zip(dims, want)):
            return
        # the rows of the table the ids index (a Gather reached through reshapes and casts)
        reach, rows = {name}, set()
        tables = {t.name: list(t.dims) for t in self.model.graph.initializer}
        for n in self.model.graph.node:
            if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] in reach:
                if n.input[0] in tables and tables[n.input[0]]:
                    rows.add(int(tables[n.input[0]][0]))
            elif n.op_type in ("Reshape", "Unsqueeze", "Squeeze", "Cast", "Flatten", "Transpose"):
                if n.input and n.input[0] in reach:
                    reach.update(o for o in n.output if o)
        seq = [d if d else "?" for d in dims]
        vocab = min(rows) if rows else "V"
        raise SpecError(
            f"Graph input {name!r} takes integer token ids, shape {tuple(seq)} per sample"
            + (f" (ids in [0, {vocab}))" if rows else "")
            + f". Received: input_shape {want} (the dataset's sample shape). For timing on random "
            f"ids: --dataset synthetic -D shape=[{', '.join(map(str, seq))}] -D vocab_size={vocab}"
        )

    def _check_supported(self, nodes: list[Any]) -> None:
        """Every node that is not constant must have a handler; list all that do not."""
        const = set(self.values) - {n for n, v in self.values.items() if isinstance(v, Act)}
        missing: dict[str, list[str]] = {}

        def walk(nodes: list[Any], const: set[str], where: str = "") -> None:
            for i, n in enumerate(nodes):
                key = _op_key(n)
                ins = [x for x in n.input if x]
                foldable = key == n.op_type and (
                    n.op_type in SHAPE_OPS or all(x in const for x in ins)
                )
                if foldable and n.op_type not in ("If", "Loop", "Scan"):
                    const.update(o for o in n.output if o)
                elif key not in self.handlers:
                    missing.setdefault(key, []).append(where + (n.name or f"#{i}"))
                if n.op_type == "Loop" and key in self.handlers:  # its body, unrolled later
                    body = next((a.g for a in n.attribute if a.name == "body"), None)
                    if body is not None:
                        inner = const | {t.name for t in body.initializer}
                        inner |= {b.name for b in body.input[:2]}  # iteration number, cond
                        walk(list(body.node), inner, f"{n.name or f'#{i}'}/")

        walk(nodes, const)
        if missing:
            lines = [
                f"  {op} x{len(names)}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
                for op, names in sorted(missing.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            ]
            raise SpecError(
                f"The ONNX model {self.name!r} uses {len(missing)} op type(s) dlbench cannot "
                "import yet (op, count, node names):\n" + "\n".join(lines)
            )

    def _node(self, n: Any, index: int, prefix: str = "") -> None:
        label = n.name or f"{n.op_type}#{index}"
        if prefix:  # a node of an unrolled loop body: one copy per iteration
            label = f"{prefix}/{label}"
        ins = [self.get(x, label) for x in n.input]
        attrs = _attrs(n)
        if n.op_type in SHAPE_OPS and isinstance(ins[0], Act):
            shape = np.array(ins[0].shape_vector(), np.int64)
            start, end = attrs.get("start", 0), attrs.get("end", None)
            self.values[n.output[0]] = Const(shape[start:end])
            self.folded += 1
            return
        if (
            all(v is None or isinstance(v, Const) for v in ins)
            and _op_key(n) == n.op_type
            and n.op_type != "Loop"  # unrolled by its handler (its body reads outer values)
        ):
            self._fold(n, label, [None if v is None else v.value for v in ins])
            return
        handler = self.handlers[_op_key(n)]
        outs = handler(self, n, label, attrs)
        for name, value in zip(n.output, outs):
            if name and value is not None:
                self.values[name] = value
        self.mapped[n.op_type] += 1
        for name in n.output[len(outs) :]:
            if name and self.consumers[name]:
                raise SpecError(f"Node {label!r} ({n.op_type}): output {name!r} is not supported")

    def _fold(self, n: Any, label: str, arrays: list[np.ndarray | None]) -> None:
        from onnx.reference import ReferenceEvaluator

        arrays = list(arrays)
        if n.op_type in ("ConstantOfShape", "Expand") and arrays:
            k = 0 if n.op_type == "ConstantOfShape" else 1
            if arrays[k] is not None:
                # a batch-sized constant: keep one sample, it broadcasts over the batch
                arrays[k] = np.where(np.asarray(arrays[k]) == BATCH, 1, arrays[k])
        if n.op_type in _SIZED:
            self._check_size(n, label, arrays)
        feeds = {}
        for name, arr in zip(n.input, arrays):
            if name:
                feeds[name] = arr
        try:
            if n.op_type == "GatherElements":
                # ONNX's reference evaluator mis-reshapes some shapes (data (1, 512), indices
                # (1, 128): BERT's token-type ids); it is take_along_axis
                data, idx = (np.asarray(a) for a in arrays[:2])
                axis = int(_attrs(n).get("axis", 0)) % max(data.ndim, 1)
                idx = np.where(idx < 0, idx + data.shape[axis], idx)
                results = [np.take_along_axis(data, idx, axis=axis)]
            else:
                ev = ReferenceEvaluator(n, opsets={"": self.opset})
                results = ev.run(None, feeds)
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(
                f"Node {label!r} ({n.op_type}): cannot fold this constant subgraph: {exc}"
            ) from None
        for name, value in zip(n.output, results):
            value = np.asarray(value)
            check_elements(value.shape, f"Node {label!r} ({n.op_type}) output")
            if name:
                self.values[name] = Const(value)
        self.folded += 1

    def _check_size(self, n: Any, label: str, arrays: list[Any]) -> None:
        try:
            if n.op_type == "ConstantOfShape":
                check_elements(np.asarray(arrays[0]).tolist(), f"Node {label!r} (ConstantOfShape)")
            elif n.op_type == "Expand":
                shape = np.broadcast_shapes(
                    np.shape(arrays[0]), tuple(np.asarray(arrays[1]).tolist())
                )
                check_elements(shape, f"Node {label!r} (Expand)")
            elif n.op_type == "Tile":
                reps = np.asarray(arrays[1]).tolist()
                check_elements(
                    [int(a) * int(r) for a, r in zip(np.shape(arrays[0]), reps)],
                    f"Node {label!r} (Tile)",
                )
            elif n.op_type == "Range":
                start, limit, delta = (float(np.asarray(a)) for a in arrays[:3])
                if delta == 0 or not np.isfinite([start, limit, delta]).all():
                    raise SpecError(f"Node {label!r} (Range): bad start/limit/delta")
                check_elements(
                    [max(int(np.ceil((limit - start) / delta)), 0)], f"Node {label!r} (Range)"
                )
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"Node {label!r} ({n.op_type}): malformed inputs ({exc})") from None

    # -- the result ------------------------------------------------------------------------------

    def _build(self, inputs: list[TensorInfo]) -> ModelSpec:
        outs = []
        for o in self.model.graph.output:
            v = self.get(o.name, "graph output")
            if not isinstance(v, Act):
                raise SpecError(f"Graph output {o.name!r} is a constant; nothing to compute")
            if v.merged:
                raise SpecError(
                    f"Graph output {o.name!r} (shape {v.shape}) has the batch axis merged with "
                    "other axes; dlbench outputs keep it separate"
                )
            if v.b != 0:
                raise SpecError(
                    f"Graph output {o.name!r} has its batch axis at {v.b}; dlbench outputs are "
                    "batch-first"
                )
            outs.append(v.name)
        rename = {}
        taken = set(self.shapes)
        for o, name in zip(self.model.graph.output, outs):
            if name in self.node_by_name and name not in rename and o.name not in taken:
                rename[name] = o.name
                taken.add(o.name)
        for node in self.nodes:
            node.inputs = [rename.get(i, i) for i in node.inputs]
            node.name = rename.get(node.name, node.name)
        outs = [rename.get(o, o) for o in outs]
        meta: dict[str, Any] = {
            "source": "onnx",
            "onnx_import": {
                "model": self.name,
                "opset": self.opset,
                "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
                "onnx_ops": dict(self.mapped.most_common()),
                "spec_ops": dict(Counter(n.op for n in self.nodes).most_common()),
                "folded_nodes": self.folded,
                "fused": dict(self.fused),
            },
        }
        if self.fixed_batch is not None:
            meta["onnx_import"]["fixed_batch"] = self.fixed_batch
        used = {p for n in self.nodes for p in n.params.values()}
        params = {k: v for k, v in self.params.items() if k in used}
        spec = ModelSpec(self.name, inputs, outs, self.nodes, params, meta)
        return spec.validate()
