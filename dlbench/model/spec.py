"""ModelSpec: a framework-neutral network (a small DAG of ops) with NumPy weights.

A spec is what every backend builds from, so that "the same model" means the same graph and the
same bytes of weights everywhere. Layout is canonical: NCHW activations, OIHW conv weights,
``(out, in)`` dense weights. The op set lives in :mod:`dlbench.model.ops`.

A spec is saved as ``<stem>.json`` (the graph, plain JSON) plus ``<stem>.npz`` (the weights,
``np.savez``, read back with ``allow_pickle=False``): loading a spec never executes code.

Example:
    >>> import numpy as np
    >>> from dlbench.model.spec import ModelSpec, Node, TensorInfo
    >>> spec = ModelSpec(
    ...     name="tiny",
    ...     inputs=[TensorInfo("x", (None, 4))],
    ...     outputs=["fc"],
    ...     nodes=[Node("fc", "dense", ["x"], params={"weight": "fc.w"})],
    ...     params={"fc.w": np.ones((2, 4), np.float32)},
    ... )
    >>> spec.stats()["params"], spec.num_classes
    (8, 2)
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import SpecError
from dlbench.model.ops import (
    INT_INPUT_DTYPES,
    INT_PASS_OPS,
    Shape,
    check_node,
    count,
    get_schema,
)
from dlbench.model.weights import _declared_params, read_weights
from dlbench.serialize import to_json_safe

FORMAT = "dlbench.modelspec"
FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, NumPy scalars -> Python, recursively; raise on anything not JSON."""
    try:
        return to_json_safe(value, strict=True)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from None


@dataclass
class TensorInfo:
    """A graph input: name, shape with the batch dimension as ``None``, dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.shape = tuple(None if d is None else int(d) for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class InputDesc:
    """What a built model's (first) input takes from the host, for ``Model.to_device``.

    A float input takes any numeric batch, converted to the backend's float dtype (as before).
    An integer input (token ids, ``dtype="int64"``) takes integer batches only, passed on as
    int64 untouched; ids must lie in ``[0, vocab)``, the rows of the smallest embedding table
    reading them (a framework would otherwise fail mid-run, or, like JAX, clamp silently).

    Example:
        >>> InputDesc("ids", "int64", vocab=10).host(np.array([[1, 9]])).dtype
        dtype('int64')
    """

    name: str = "input"
    dtype: str = "float32"
    vocab: int | None = None

    @property
    def integer(self) -> bool:
        return self.dtype in INT_INPUT_DTYPES

    def host(self, batch: Any, float_dtype: Any = np.float32) -> np.ndarray:
        """``batch`` as the host array this input takes; a :class:`SpecError` if it cannot be."""
        if not self.integer:
            return np.asarray(batch, dtype=float_dtype)
        a = np.asarray(batch)
        if a.dtype.kind not in "iu":
            raise SpecError(
                f"Input {self.name!r}: expected integer token ids (an int64 batch). "
                f"Received: a {a.dtype} batch"
            )
        if self.vocab is not None and a.size:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= self.vocab:
                raise SpecError(
                    f"Input {self.name!r}: expected token ids in [0, {self.vocab}). "
                    f"Received: ids from {lo} to {hi}"
                )
        return np.asarray(a, dtype=np.int64)


#: The input of a model built without a spec (a wrapped native model): float, as always.
FLOAT_INPUT = InputDesc()


@dataclass
class Node:
    """One op application. Its output tensor is named after the node.

    Args:
        name: Unique node name (also the name of its output).
        op: An op of :data:`dlbench.model.ops.OPS`.
        inputs: Names of graph inputs or earlier nodes.
        attrs: Op attributes (JSON values).
        params: Parameter role -> name of an array in ``ModelSpec.params``.
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs = list(self.inputs)
        self.attrs = _jsonable(dict(self.attrs))
        self.params = dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "attrs": self.attrs,
            "params": self.params,
        }


@dataclass
class ResolvedNode:
    """A validated node as a backend consumes it: normalised attrs, arrays, static shapes.

    ``attrs`` hold defaults and derived values (``pads`` as (top, bottom, left, right) for
    conv2d and pools). Shapes are per-sample (no batch dimension).
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]
    params: dict[str, np.ndarray]
    param_names: dict[str, str]
    in_shapes: list[Shape]
    out_shape: Shape


class ModelSpec:
    """A framework-neutral model: graph + NumPy weights.

    Args:
        name: Model name.
        inputs: Graph inputs (one :class:`TensorInfo` each; batch dimension ``None``).
        outputs: Names of the tensors the model returns.
        nodes: The graph, in topological order.
        params: Weight arrays by name (float32, canonical layout).
        metadata: JSON-safe extra information (task, classes, description...).
    """

    def __init__(
        self,
        name: str,
        inputs: list[TensorInfo],
        outputs: list[str],
        nodes: list[Node],
        params: dict[str, np.ndarray],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.inputs = [i if isinstance(i, TensorInfo) else TensorInfo(**i) for i in inputs]
        self.outputs = list(outputs)
        self.nodes = [n if isinstance(n, Node) else Node(**n) for n in nodes]
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self.metadata = _jsonable(dict(metadata or {}))
        self._resolved: list[ResolvedNode] | None = None
        self._shapes: dict[str, Shape] | None = None

    # -- convenience -------------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the (first) input, e.g. ``(1, 8, 8)``."""
        return tuple(int(d) for d in self.inputs[0].shape[1:])  # type: ignore[arg-type]

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the (first) output."""
        return self.shapes()[self.outputs[0]]

    @property
    def num_classes(self) -> int:
        """Number of classes (or output size) of the first output."""
        meta = self.metadata.get("num_classes")
        if isinstance(meta, int):
            return meta
        return int(math.prod(self.output_shape))

    def __repr__(self) -> str:
        return (
            f"<ModelSpec {self.name!r}: {len(self.nodes)} nodes, "
            f"{sum(int(p.size) for p in self.params.values())} params, input {self.input_shape}>"
        )

    # -- validation ---------------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._resolved = None
        self._shapes = None

    def validate(self) -> ModelSpec:
        """Check the whole graph; raise :class:`SpecError` naming the offending node.

        Checks: unique names, known ops, attribute types and values, inputs defined before use,
        parameters present and floating point, parameter shapes that fit, outputs defined.
        Returns ``self`` so calls chain.
        """
        self._resolve()
        return self

    def shapes(self) -> dict[str, Shape]:
        """Per-sample shape of every tensor (graph inputs and node outputs)."""
        self._resolve()
        assert self._shapes is not None
        return dict(self._shapes)

    def resolved(self) -> list[ResolvedNode]:
        """The validated graph in the form backends consume (see :class:`ResolvedNode`)."""
        return list(self._resolve())

    def _resolve(self) -> list[ResolvedNode]:
        if self._resolved is not None:
            return self._resolved
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"Expected a non-empty string model name. Received: {self.name!r}")
        if not self.inputs:
            raise SpecError("Expected at least one graph input. Received: none")
        shapes: dict[str, Shape] = {}
        integer: set[str] = set()  # tensors holding integer ids
        for t in self.inputs:
            if (
                not t.shape
                or t.shape[0] is not None
                or any(d is None or d < 1 for d in t.shape[1:])
            ):
                raise SpecError(
                    f"Input {t.name!r}: expected shape (None, d1, ...) with a free batch "
                    f"dimension and positive dims. Received: {t.shape}"
                )
            if t.dtype != "float32" and t.dtype not in INT_INPUT_DTYPES:
                allowed = ", ".join(repr(d) for d in ("float32", *INT_INPUT_DTYPES))
                raise SpecError(
                    f"Input {t.name!r}: expected dtype {allowed}. Received: {t.dtype!r}"
                )
            if t.dtype in INT_INPUT_DTYPES:
                integer.add(t.name)
            shapes[t.name] = tuple(int(d) for d in t.shape[1:])  # type: ignore[arg-type]
        for name, arr in self.params.items():
            if arr.dtype.kind != "f":
                raise SpecError(
                    f"Parameter {name!r}: expected a floating point array. Received dtype {arr.dtype}"
                )
        resolved: list[ResolvedNode] = []
        for node in self.nodes:
            if not isinstance(node.name, str) or not node.name:
                raise SpecError(f"Expected a non-empty node name. Received: {node.name!r}")
            if node.name in shapes:
                raise SpecError(
                    f"Node {node.name!r}: name already used by an input or earlier node"
                )
            for inp in node.inputs:
                if inp not in shapes:
                    raise SpecError(
                        f"Node {node.name!r} ({node.op}): input {inp!r} is not a graph input or "
                        f"an earlier node"
                    )
            arrays: dict[str, np.ndarray] = {}
            for role, pname in node.params.items():
                if pname not in self.params:
                    raise SpecError(
                        f"Node {node.name!r} ({node.op}): parameter {role}={pname!r} is not in "
                        f"spec.params"
                    )
                arrays[role] = self.params[pname]
            _check_dtypes(node, integer)
            in_shapes = [shapes[i] for i in node.inputs]
            attrs, out = check_node(
                node.name,
                node.op,
                len(node.inputs),
                node.attrs,
                node.params,
                in_shapes,
                {r: tuple(a.shape) for r, a in arrays.items()},
            )
            shapes[node.name] = out
            resolved.append(
                ResolvedNode(
                    node.name,
                    node.op,
                    list(node.inputs),
                    attrs,
                    arrays,
                    dict(node.params),
                    in_shapes,
                    out,
                )
            )
        if not self.outputs:
            raise SpecError("Expected at least one graph output. Received: none")
        for o in self.outputs:
            if o not in shapes:
                raise SpecError(f"Output {o!r} is not a graph input or node")
            if o in integer:
                raise SpecError(
                    f"Output {o!r} holds integer ids; expected outputs computed from them "
                    "(an embedding and what follows)"
                )
        self._shapes = shapes
        self._resolved = resolved
        return resolved

    def input_desc(self) -> InputDesc:
        """What the (first) input takes from the host: name, dtype and, for integer ids, the
        number of valid ids (the rows of the smallest embedding table reading them, directly
        or through reshape/transpose/slice/flatten)."""
        t = self.inputs[0]
        if t.dtype not in INT_INPUT_DTYPES:
            return InputDesc(t.name, t.dtype)
        reach, rows = {t.name}, []
        for rn in self._resolve():
            if not rn.inputs or rn.inputs[0] not in reach:
                continue
            if rn.op == "embedding":
                rows.append(int(rn.params["weight"].shape[0]))
            elif rn.op in INT_PASS_OPS:
                reach.add(rn.name)
        return InputDesc(t.name, t.dtype, min(rows) if rows else None)

    # -- statistics ---------------------------------------------------------------------------

    def num_params(self, include_buffers: bool = False) -> int:
        """Number of scalar weights used by the graph, each array counted once.

        Batch-norm running statistics are buffers, not parameters (as in PyTorch's
        ``sum(p.numel() for p in model.parameters())``), unless ``include_buffers``.
        """
        used = {
            p
            for n in self.nodes
            for role, p in n.params.items()
            if include_buffers or role not in get_schema(n.op, n.name).buffers
        }
        return int(sum(self.params[p].size for p in used if p in self.params))

    def stats(self) -> dict[str, int]:
        """Parameters, multiply-accumulates and FLOPs per sample, computed from the graph.

        ``params`` are trained weights, ``buffers`` batch-norm running statistics. FLOPs count a
        MAC as 2 plus element-wise work (bias, activations, normalisation, pooling).

        Example:
            >>> import dlbench
            >>> round(dlbench.zoo.get("resnet20").stats()["params"] / 1e6, 2)
            0.27
        """
        macs = flops = 0
        for rn in self._resolve():
            m, f = count(
                rn.op,
                rn.attrs,
                rn.in_shapes,
                {r: tuple(a.shape) for r, a in rn.params.items()},
                rn.out_shape,
            )
            macs += m
            flops += f
        params = self.num_params()
        return {
            "params": params,
            "buffers": self.num_params(include_buffers=True) - params,
            "macs": macs,
            "flops": flops,
        }

    def weight_bytes(self) -> int:
        """Bytes of all parameter arrays."""
        return int(sum(a.nbytes for a in self.params.values()))

    # -- identity -----------------------------------------------------------------------------

    def graph_dict(self) -> dict[str, Any]:
        """The JSON document of the graph (no weights)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": list(self.outputs),
            "nodes": [n.to_dict() for n in self.nodes],
            "params": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in self.params.items()
            },
            "metadata": self.metadata,
        }

    def fingerprint(self) -> str:
        """A SHA-256 content hash of the graph and the weight bytes (not of name or metadata).

        Two specs with the same fingerprint compute the same function with the same weights.
        """
        g = self.graph_dict()
        h = hashlib.sha256()
        body = {k: g[k] for k in ("inputs", "outputs", "nodes", "params")}
        h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        for k in sorted(self.params):
            a = np.ascontiguousarray(self.params[k])
            h.update(k.encode() + b"\0" + str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSpec):
            return NotImplemented
        return (
            self.graph_dict() == other.graph_dict()
            and self.params.keys() == other.params.keys()
            and all(
                self.params[k].dtype == other.params[k].dtype
                and np.array_equal(self.params[k], other.params[k])
                for k in self.params
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> ModelSpec:
        return ModelSpec(
            self.name,
            copy.deepcopy(self.inputs),
            list(self.outputs),
            copy.deepcopy(self.nodes),
            {k: v.copy() for k, v in self.params.items()},
            copy.deepcopy(self.metadata),
        )

    def iter_nodes(self) -> Iterator[Node]:
        return iter(self.nodes)

    # -- persistence --------------------------------------------------------------------------

    @staticmethod
    def _paths(path: str | Path) -> tuple[Path, Path]:
        p = Path(path)
        stem = p.with_suffix("") if p.suffix in (".json", ".npz") else p
        return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".npz")

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.json`` (graph) and ``<stem>.npz`` (weights); return both paths.

        ``path`` may be the stem or either file name.
        """
        self.validate()
        jpath, npath = self._paths(path)
        jpath.parent.mkdir(parents=True, exist_ok=True)
        jpath.write_text(json.dumps(self.graph_dict(), indent=1) + "\n")
        with open(npath, "wb") as f:
            np.savez(f, **self.params)
        return jpath, npath

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        """Read a spec written by :meth:`save`. Never unpickles, never runs code.

        Every way a file can be wrong is a :class:`SpecError` saying what was expected and
        what was received: a missing, truncated or non-JSON graph file; a malformed ``params``
        section; a truncated or corrupt ``.npz``; a member that is not a plain numeric array;
        a member whose header declares more data than it holds (refused before anything is
        allocated, see :func:`read_weights`); weights that do not match the graph.

        Raises:
            SpecError: a file is missing, malformed, or its weights do not match the graph.
        """
        jpath, npath = cls._paths(path)
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(f"Spec graph file not found: {jpath}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"Spec graph file {jpath} is not valid JSON: {exc}") from None
        except RecursionError:
            raise SpecError(
                f"Spec graph file {jpath} is nested too deeply to parse. Expected a dlbench "
                "model spec (a few levels of nesting)."
            ) from None
        except OSError as exc:
            raise SpecError(f"Spec graph file {jpath} could not be read: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SpecError(f"{jpath} is not a dlbench model spec (expected format {FORMAT!r})")
        if doc.get("version") != FORMAT_VERSION:
            raise SpecError(
                f"{jpath}: expected spec format version {FORMAT_VERSION}. Received: {doc.get('version')}"
            )
        declared = _declared_params(doc.get("params", {}), jpath)
        params = read_weights(npath)
        if set(params) != set(declared):
            raise SpecError(
                f"{npath}: weights {sorted(set(params) ^ set(declared))} do not match the graph file"
            )
        for k, (shape, dtype) in declared.items():
            a = params[k]
            if a.shape != shape or str(a.dtype) != dtype:
                raise SpecError(
                    f"Parameter {k!r}: graph says {dtype}{shape}, weights file has "
                    f"{a.dtype}{a.shape}"
                )
        try:
            spec = cls(
                name=doc["name"],
                inputs=[
                    TensorInfo(t["name"], tuple(t["shape"]), t.get("dtype", "float32"))
                    for t in doc["inputs"]
                ],
                outputs=doc["outputs"],
                nodes=[
                    Node(n["name"], n["op"], n["inputs"], n.get("attrs", {}), n.get("params", {}))
                    for n in doc["nodes"]
                ],
                params=params,
                metadata=doc.get("metadata", {}),
            )
            return spec.validate()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecError(
                f"{jpath}: malformed spec ({type(exc).__name__}: {exc}). Expected 'name', "
                "'inputs' (objects with 'name' and an int 'shape' list), 'outputs' (names) and "
                "'nodes' (objects with 'name', 'op', 'inputs', 'attrs', 'params')."
            ) from None


def _check_dtypes(node: Node, integer: set[str]) -> None:
    """Integer ids flow only into ``embedding`` (its input) and the layout ops that keep them
    integer; ``embedding`` reads nothing else. Records the node's output as integer if it is."""
    ints = [i for i in node.inputs if i in integer]
    if node.op == "embedding":
        if len(node.inputs) == 1 and not ints:
            raise SpecError(
                f"Node {node.name!r} (embedding): expected integer ids as input (a graph input of "
                f"dtype int64, possibly reshaped). Received: float tensor {node.inputs[0]!r}"
            )
        return
    if not ints:
        return
    if node.op in INT_PASS_OPS:
        integer.add(node.name)
        return
    raise SpecError(
        f"Node {node.name!r} ({node.op}): input {ints[0]!r} holds integer ids; expected it to be "
        f"read by embedding (or {', '.join(sorted(INT_PASS_OPS))} first). Received: {node.op}"
    )


def check_fits_dataset(spec: ModelSpec, info: Any) -> None:
    """Raise :class:`SpecError` unless ``spec`` can run on the dataset described by ``info``.

    Checks that one sample has the model's input shape and, for classification, that the
    model scores at least as many classes as the dataset has labels. Call it after loading a
    spec from a file, before anything is built or timed.

    Args:
        spec: The model.
        info: The dataset's :class:`~dlbench.data.dataset.DatasetInfo` (``input_shape``,
            ``num_classes``, ``task``, ``name``).

    Example:
        >>> from dlbench import datasets, zoo
        >>> info = datasets.load("digits").info
        >>> check_fits_dataset(zoo.get("mlp", input_shape=(1, 8, 8)), info)
        >>> check_fits_dataset(zoo.get("mlp", input_shape=(3, 8, 8)), info)
        Traceback (most recent call last):
        ...
        dlbench.errors.SpecError: Expected the model's input shape to match a sample of dataset \
'digits' (1, 8, 8). Received: model 'mlp' takes (3, 8, 8)
    """
    want = tuple(int(d) for d in info.input_shape)
    got = spec.input_shape
    if got != want:
        raise SpecError(
            f"Expected the model's input shape to match a sample of dataset {info.name!r} "
            f"{want}. Received: model {spec.name!r} takes {got}"
        )
    if getattr(info, "task", None) == "classification" and info.num_classes:
        outputs = spec.num_classes
        if outputs < info.num_classes:
            raise SpecError(
                f"Expected the model to score at least the {info.num_classes} classes of "
                f"dataset {info.name!r}. Received: model {spec.name!r} has {outputs} outputs"
            )
