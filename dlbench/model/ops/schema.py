"""The op-set machinery: attribute schemas and their normalisation, the OPS table, shape
helpers, node checking and MAC/FLOP counting. The ops themselves are declared in the family
modules of this package."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import SpecError

Shape = tuple[int, ...]
_REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind, default (or required) and allowed values."""

    kind: str  # int | float | bool | str | pair | ints | padding
    default: Any = _REQUIRED
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass
class Ctx:
    """What shape inference sees of one node (attributes already normalised)."""

    node: str
    op: str
    attrs: dict[str, Any]
    in_shapes: list[Shape]
    param_shapes: dict[str, Shape]

    def fail(self, message: str) -> SpecError:
        return SpecError(f"Node {self.node!r} ({self.op}): {message}")

    def expect_rank(self, i: int, rank: int | Sequence[int]) -> Shape:
        ranks = (rank,) if isinstance(rank, int) else tuple(rank)
        shape = self.in_shapes[i]
        if len(shape) not in ranks:
            want = " or ".join(str(r + 1) for r in ranks)
            raise self.fail(
                f"expected input {i} to have rank {want} (batch included). "
                f"Received shape {('N', *shape)}"
            )
        return shape

    def expect_param(self, role: str, shape: Shape) -> None:
        got = self.param_shapes.get(role)
        if got is None:
            return
        if tuple(got) != tuple(shape):
            raise self.fail(
                f"expected parameter `{role}` to have shape {tuple(shape)}. Received: {tuple(got)}"
            )


@dataclass(frozen=True)
class OpSchema:
    """The contract of one op."""

    name: str
    min_inputs: int = 1
    max_inputs: int | None = 1
    attrs: dict[str, Attr] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    optional_params: tuple[str, ...] = ()
    #: parameter roles that are state, not trained weights (not counted in ``params``)
    buffers: tuple[str, ...] = ()
    #: per-sample input shapes -> per-sample output shape; also checks parameter shapes
    infer: Callable[[Ctx], Shape] = lambda ctx: ctx.in_shapes[0]
    #: multiply-accumulates per sample
    macs: Callable[[Ctx, Shape], int] = lambda ctx, out: 0
    #: non-MAC floating point operations per output element (activations, normalisation...)
    flops_per_output: float = 0.0
    doc: str = ""


OPS: dict[str, OpSchema] = {}
#: Integer dtypes a graph input may have (token ids); every other tensor is float.
INT_INPUT_DTYPES = ("int64",)
#: Ops that carry integer ids through unchanged (layout only); ``embedding`` consumes them.
INT_PASS_OPS = frozenset({"reshape", "transpose", "slice", "flatten"})


def _op(schema: OpSchema) -> OpSchema:
    OPS[schema.name] = schema
    return schema


def get_schema(op: str, node: str = "?") -> OpSchema:
    """The schema of ``op``; a :class:`SpecError` naming ``node`` when the op is unknown."""
    try:
        return OPS[op]
    except KeyError:
        raise SpecError(
            f"Node {node!r}: unknown op {op!r}. Expected one of: {', '.join(sorted(OPS))}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Attribute normalisation
# ---------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _norm_value(kind: str, v: Any, choices: tuple[Any, ...] | None) -> Any:
    """Return the normalised value, or raise TypeError with what was expected."""
    if kind == "int":
        if not _is_int(v):
            raise TypeError("an int")
        return int(v)
    if kind == "float":
        if not (_is_int(v) or isinstance(v, float)):
            raise TypeError("a number")
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise TypeError("a bool")
        return v
    if kind == "str":
        if not isinstance(v, str) or (choices and v not in choices):
            raise TypeError(f"one of {list(choices or ())}" if choices else "a string")
        return v
    if kind == "pair":
        if _is_int(v):
            return [int(v), int(v)]
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v):
            return [int(x) for x in v]
        raise TypeError("an int or a pair of ints")
    if kind == "ints":
        if isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
            return [int(x) for x in v]
        raise TypeError("a list of ints")
    if kind == "padding":
        if isinstance(v, str):
            if v not in ("same", "valid"):
                raise TypeError("'same', 'valid', an int, a pair or (top, bottom, left, right)")
            return v
        if _is_int(v):
            return [int(v)] * 4
        if isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
            if len(v) == 2:
                return [int(v[0]), int(v[0]), int(v[1]), int(v[1])]
            if len(v) == 4:
                return [int(x) for x in v]
        raise TypeError("'same', 'valid', an int, a pair or (top, bottom, left, right)")
    raise AssertionError(kind)  # pragma: no cover


def normalize_attrs(schema: OpSchema, node: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Check ``attrs`` against ``schema``; return them with defaults filled in, JSON-native."""
    if not isinstance(attrs, dict):
        raise SpecError(
            f"Node {node!r} ({schema.name}): expected attrs to be a dict. Received: {attrs!r}"
        )
    unknown = sorted(set(attrs) - set(schema.attrs))
    if unknown:
        raise SpecError(
            f"Node {node!r} ({schema.name}): unknown attribute(s) {unknown}. "
            f"Expected some of: {sorted(schema.attrs)}"
        )
    out: dict[str, Any] = {}
    for key, spec in schema.attrs.items():
        if key not in attrs:
            if spec.required:
                raise SpecError(
                    f"Node {node!r} ({schema.name}): missing required attribute `{key}`"
                )
            out[key] = spec.default
            continue
        value = attrs[key]
        if value is None and spec.default is None:
            out[key] = None
            continue
        try:
            out[key] = _norm_value(spec.kind, value, spec.choices)
        except TypeError as exc:
            raise SpecError(
                f"Node {node!r} ({schema.name}): expected attribute `{key}` to be {exc}. "
                f"Received: {key}={value!r}"
            ) from None
    return out


# ---------------------------------------------------------------------------------------------
# Shared shape helpers (also used by the backends, through ResolvedNode.attrs)
# ---------------------------------------------------------------------------------------------


def conv_out(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow-style "same" padding: output ``ceil(size / s)``, extra pixel at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def pool_geometry(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[int, int]:
    """(output size, extra padding at the end) of one pooled axis, PyTorch semantics."""
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    extra = max((out - 1) * s + k - (size + 2 * p), 0)
    return out, extra


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _axis(ctx: Ctx, axis: int, rank: int, name: str = "axis") -> int:
    """Normalise a batch-inclusive axis of a rank-``rank`` tensor; axis 0 is not allowed."""
    a = axis + rank if axis < 0 else axis
    if not 1 <= a < rank:
        raise ctx.fail(
            f"expected `{name}` to be a non-batch axis of a rank-{rank} tensor "
            f"(1..{rank - 1} or negative). Received: {name}={axis}"
        )
    return a


def check_node(
    name: str,
    op: str,
    n_inputs: int,
    attrs: dict[str, Any],
    params: dict[str, str],
    in_shapes: list[Shape],
    param_shapes: dict[str, Shape],
) -> tuple[dict[str, Any], Shape]:
    """Validate one node; return (normalised attrs incl. derived ones, per-sample output shape)."""
    schema = get_schema(op, name)
    hi = schema.max_inputs
    if n_inputs < schema.min_inputs or (hi is not None and n_inputs > hi):
        want = (
            f"{schema.min_inputs}"
            if hi == schema.min_inputs
            else (
                f"{schema.min_inputs}..{hi}" if hi is not None else f"at least {schema.min_inputs}"
            )
        )
        raise SpecError(f"Node {name!r} ({op}): expected {want} input(s). Received: {n_inputs}")
    allowed = set(schema.params) | set(schema.optional_params)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise SpecError(
            f"Node {name!r} ({op}): unknown parameter role(s) {unknown}. "
            f"Expected some of: {sorted(allowed)}"
        )
    missing = [r for r in schema.params if r not in params]
    if missing:
        raise SpecError(f"Node {name!r} ({op}): missing parameter(s) {missing}")
    norm = normalize_attrs(schema, name, attrs)
    ctx = Ctx(name, op, norm, [tuple(s) for s in in_shapes], dict(param_shapes))
    out = tuple(int(d) for d in schema.infer(ctx))
    return ctx.attrs, out


def count(
    op: str,
    attrs: dict[str, Any],
    in_shapes: list[Shape],
    param_shapes: dict[str, Shape],
    out: Shape,
) -> tuple[int, int]:
    """(MACs, FLOPs) per sample of one node whose attrs are already normalised."""
    schema = OPS[op]
    ctx = Ctx("?", op, attrs, in_shapes, param_shapes)
    macs = int(schema.macs(ctx, out))
    flops = 2 * macs + int(schema.flops_per_output * _numel(out))
    if "bias" in param_shapes and op in ("conv2d", "dense"):
        flops += _numel(out)
    if op in ("avg_pool", "max_pool"):
        k = attrs["kernel_size"]
        flops += _numel(out) * k[0] * k[1]
    if op in ("global_avg_pool", "reduce_mean"):
        flops += _numel(in_shapes[0])
    return macs, flops
