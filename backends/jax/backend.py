"""The JAX backend: a ModelSpec becomes a pure function ``apply(params, x)`` over a pytree.

Modes: ``jit`` (``jax.jit``, compiled by XLA once per input shape) and ``eager`` (op by op).
Outputs are synced with ``block_until_ready``. Matmuls and convolutions use
``Precision.HIGHEST`` for float32. Convolution weights are stored HWIO once at build time and
activations live NHWC inside the program (:mod:`dlbench.backends.common.layout`): ``to_device``
hands an image model an NHWC batch, as a JAX user would, and outputs leave canonical. JAX
takes its threads from ``XLA_FLAGS`` (set by the runner before import); the backend records
what was in force.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("jax").build(dlbench.zoo.get("mlp"))
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.layout import (
    CANON,
    NCHW_TO_NHWC,
    NHWC,
    NHWC_TO_NCHW,
    const_to_nhwc,
    physical_perm,
    plan_layouts,
)
from dlbench.backends.common.options import COMMON_OPTIONS, check_choice, check_common, thread_env
from dlbench.backends.jax.ops import HIGHEST, NHWC_OPS, NHWC_SUFFIX, OPS, conv2d_kernel, prepare
from dlbench.errors import BackendError
from dlbench.model.backend import Backend, Model, parse_device
from dlbench.model.spec import FLOAT_INPUT, InputDesc, ModelSpec

MODES = ("jit", "eager")


def make_apply(
    spec: ModelSpec, arranged: bool = False, channels_last: bool = False
) -> tuple[Callable[[dict, jax.Array], jax.Array], dict[str, dict[str, np.ndarray]]]:
    """``(apply, params)``: a pure function of a params pytree and a batch.

    ``arranged=False``: every weight in the canonical layout (what training updates and exports).
    ``arranged=True``: convolution and dense weights stored once in the layout XLA:CPU's kernels
    read (:data:`ARRANGED`), so the compiled program does not transpose them on every call.
    ``channels_last=True`` (with ``arranged``): activations live NHWC inside the program where
    :func:`~dlbench.backends.common.layout.plan_layouts` puts them (a chain of convolutions has
    one transpose at its entry and one at its exit, none when the input arrives NHWC); outputs
    leave canonical. ``apply.input_layout`` says what the batch must be: ``"canon"`` (NCHW) or
    ``"nhwc"``.
    """
    plan = spec.resolved()
    OPS.check(plan)
    layouts = plan_layouts(spec, plan, channels_last=channels_last and arranged)
    params = {rn.name: prepare(rn) for rn in plan}
    fns = [OPS.lookup(rn) for rn in plan]
    if arranged:
        for i, rn in enumerate(plan):
            if rn.op in ARRANGED:
                arrange, fn = ARRANGED[rn.op]
                params[rn.name] = arrange(params[rn.name])
                fns[i] = fn
    for i, rn in enumerate(plan):
        if rn.op == "transpose" and len(rn.out_shape) == 3:  # moves what the layouts leave
            perm = physical_perm(rn.attrs["perm"], layouts.wants[rn.name][0], layouts.out[rn.name])
            fns[i] = functools.partial(_transpose_stored, perm)
        elif rn.inputs and layouts.wants[rn.name][0] == NHWC:
            fns[i] = NHWC_OPS.get(rn.op, fns[i])
            if "other" in params[rn.name]:  # a constant operand, rearranged once (a copy:
                # the canonical program an exporter traces reads the original)
                other = params[rn.name]["other"]
                params[rn.name]["other" + NHWC_SUFFIX] = const_to_nhwc(other)
    steps = [
        (fn, rn, rn.name, layouts.out[rn.name], layouts.wants[rn.name]) for fn, rn in zip(fns, plan)
    ]
    input_name, outputs = spec.inputs[0].name, list(spec.outputs)
    input_layout = layouts.input

    def apply(params: dict, x: jax.Array) -> jax.Array:
        env = {(input_name, input_layout): x}

        def get(name: str, layout: str) -> jax.Array:
            v = env.get((name, layout))
            if v is None:  # once per tensor and layout
                perm = NCHW_TO_NHWC if layout == NHWC else NHWC_TO_NCHW
                v = env[name, layout] = jnp.transpose(
                    env[name, NHWC if layout == CANON else CANON], perm
                )
            return v

        for fn, rn, name, out, want in steps:
            env[name, out] = fn([get(i, w) for i, w in zip(rn.inputs, want)], params[name], rn)
        return get(outputs[0], CANON)

    apply.input_layout = input_layout  # type: ignore[attr-defined]
    apply.layouts = layouts  # type: ignore[attr-defined]
    return apply, params


def _transpose_stored(perm: tuple[int, ...], xs: list, p: dict, rn: Any) -> jax.Array:
    """A spec transpose on the stored arrays (see :func:`plan_layouts`): nothing when the
    layouts absorb it."""
    return xs[0] if perm == (0, 1, 2, 3) else jnp.transpose(xs[0], perm)


def _arrange_conv(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """OIHW -> HWIO (the kernel layout of XLA:CPU's convolutions), once at build time."""
    return {**p, "weight": np.ascontiguousarray(p["weight"].transpose(2, 3, 1, 0))}


def _conv_hwio(xs: list, p: dict, rn: Any) -> jax.Array:
    """:func:`dlbench.backends.jax.ops.conv2d` on an HWIO kernel (same arithmetic)."""
    return conv2d_kernel(xs, p, rn, "HWIO")


def _arrange_dense(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(out, in) -> (in, out), once at build time."""
    return {**p, "weight": np.ascontiguousarray(p["weight"].T)}


def _dense_io(xs: list, p: dict, rn: Any) -> jax.Array:
    """:func:`dlbench.backends.jax.ops.dense` on an (in, out) weight."""
    y = jnp.matmul(xs[0], p["weight"], precision=HIGHEST)
    return y + p["bias"] if "bias" in p else y


def _arrange_attention(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Attention projections (out, in) -> (in, out), once at build time."""
    return {
        **p,
        "in_weight": np.ascontiguousarray(p["in_weight"].T),
        "out_weight": np.ascontiguousarray(p["out_weight"].T),
    }


def _attention_io(xs: list, p: dict, rn: Any) -> jax.Array:
    """:func:`dlbench.backends.jax.ops.multi_head_attention` on (in, out) projections."""
    x = xs[0]
    n, (t, d), h = x.shape[0], rn.in_shapes[0], rn.attrs["num_heads"]
    mm = functools.partial(jnp.matmul, precision=HIGHEST)
    qkv = (mm(x, p["in_weight"]) + p["in_bias"]).reshape(n, t, 3, h, d // h)
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = jax.nn.softmax(mm(q, k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(d // h)), axis=-1)
    y = mm(att, v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return mm(y, p["out_weight"]) + p["out_bias"]


def _arrange_lstm(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """LSTM matrices (4H, in) -> (in, 4H), once at build time (the bias is already summed)."""
    return {
        **p,
        "weight_ih": np.ascontiguousarray(p["weight_ih"].T),
        "weight_hh": np.ascontiguousarray(p["weight_hh"].T),
    }


def _lstm_io(xs: list, p: dict, rn: Any) -> jax.Array:
    """:func:`dlbench.backends.jax.ops.lstm` on (in, 4H) matrices; the scan stacks the hidden
    states only when the sequence is returned."""
    x = xs[0]
    hs = rn.attrs["hidden_size"]
    seq_out = bool(rn.attrs["return_sequences"])
    mm = functools.partial(jnp.matmul, precision=HIGHEST)
    xw = mm(x, p["weight_ih"]) + p["bias"]  # (N, T, 4H)
    whh = p["weight_hh"]

    def step(carry, z_x):
        h, c = carry
        z = z_x + mm(h, whh)
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), (h if seq_out else None)

    h0 = jnp.zeros((x.shape[0], hs), x.dtype)
    (h, _), seq = lax.scan(step, (h0, h0), jnp.swapaxes(xw, 0, 1))
    return jnp.swapaxes(seq, 0, 1) if seq_out else h


#: op -> (arrange the node's params once, the op on the arranged params).
ARRANGED: dict[str, tuple[Callable, Callable]] = {
    "conv2d": (_arrange_conv, _conv_hwio),
    "dense": (_arrange_dense, _dense_io),
    "multi_head_attention": (_arrange_attention, _attention_io),
    "lstm": (_arrange_lstm, _lstm_io),
}


class JaxModel(Model):
    #: what ``to_device`` takes (a spec's integer ids stay int64)
    input_desc: InputDesc = FLOAT_INPUT
    #: the program reads NHWC batches: ``to_device`` transposes the NCHW batch on the host
    input_nhwc: bool = False
    #: the input layout of :attr:`fn`, the function the ONNX exporter traces
    layout: str = "NCHW"

    def __init__(
        self,
        backend: JaxBackend,
        apply: Callable,
        params: Any,
        device: str,
        jax_device: Any,
        name: str,
    ) -> None:
        super().__init__(backend, device, name)
        self.jax_device = jax_device
        self.params = jax.device_put(params, jax_device)
        self.apply = jax.jit(apply) if backend.options["mode"] == "jit" else apply
        self._weight_bytes = sum(
            int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(self.params)
        )

    def to_device(self, batch: np.ndarray) -> jax.Array:
        a = self.input_desc.host(batch)
        if self.input_nhwc:
            a = np.ascontiguousarray(a.transpose(NCHW_TO_NHWC))
        return jax.device_put(a, self.jax_device)

    def forward(self, x: jax.Array) -> jax.Array:
        return self.apply(self.params, x)

    def sync(self, y: Any) -> None:
        ready = getattr(y, "block_until_ready", None)  # one array: no pytree walk
        if ready is not None:
            ready()
        else:
            jax.block_until_ready(y)

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(jax.device_get(y))

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)


#: ``XLA_FLAGS`` when this module (and so JAX) was imported: XLA:CPU reads them when it starts.
_XLA_FLAGS_AT_START = os.environ.get("XLA_FLAGS", "")


def _xla_cpu_threads() -> int:
    """XLA:CPU's intra-op threads: 1 when its Eigen pool was turned off before it started, else
    every core this process may use (XLA has no other knob)."""
    if "xla_cpu_multi_thread_eigen=false" in _XLA_FLAGS_AT_START:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


class JaxBackend(Backend):
    """JAX. Options: ``mode`` (jit | eager), plus threads (recorded; XLA reads ``XLA_FLAGS``)
    and precision."""

    name: ClassVar[str] = "jax"
    requires: ClassVar[tuple[str, ...]] = ("jax",)
    default_options: ClassVar[dict[str, Any]] = {**COMMON_OPTIONS, "mode": "jit"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_common(self.name, self.options)
        check_choice(self.name, self.options, "mode", MODES)
        verify(self.name, self.settings())

    def _device(self, device: str) -> Any:
        kind, index = parse_device(device)
        try:
            devs = jax.devices("gpu" if kind == "cuda" else "cpu")
        except RuntimeError as exc:
            raise BackendError(f"JAX has no {kind} device here: {exc}") from None
        if index >= len(devs):
            raise BackendError(f"JAX sees {len(devs)} {kind} device(s); asked for {device!r}")
        return devs[index]

    def build(self, spec: ModelSpec, device: str = "cpu") -> JaxModel:
        self.check_device(device)
        apply, params = make_apply(spec.validate(), arranged=True, channels_last=True)
        model = JaxModel(self, apply, params, device, self._device(device), spec.name)
        model.input_desc = spec.input_desc()
        model.input_nhwc = apply.input_layout == NHWC  # type: ignore[attr-defined]
        # what the exporter traces: the same params through the canonical (NCHW) program, whose
        # pools and pads ONNX's NCHW operators express directly
        model.fn = make_apply(spec, arranged=True)[0]
        model._weight_bytes = sum(  # the NHWC copies of constant operands are not weights
            int(a.size) * a.dtype.itemsize
            for node in params.values()
            for k, a in node.items()
            if not k.endswith(NHWC_SUFFIX)
        )
        return model

    def wrap(
        self,
        native: Any,
        params: Any = None,
        device: str = "cpu",
        name: str | None = None,
        **kwargs: Any,
    ) -> JaxModel:
        """Wrap a user's ``fn(params, x)`` and its params pytree; ``input_shape`` and ``layout``
        as in :func:`dlbench.backends.jax.wrap.wrap_function`."""
        from dlbench.backends.jax.wrap import wrap_function

        return wrap_function(self, native, params, device=device, name=name, **kwargs)

    def devices(self) -> list[str]:
        out = ["cpu"]
        with contextlib.suppress(Exception):
            if jax.devices("gpu"):
                out.append("cuda")
        return out

    def memory_stats(self, index: int) -> dict[str, Any]:
        """The XLA allocator's statistics (peaks since the process started: not resettable)."""
        gpus = [d for d in jax.devices() if d.platform in ("gpu", "cuda")]
        if index >= len(gpus):
            return {}
        stats = gpus[index].memory_stats() or {}
        keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
        out = {k: int(stats[k]) for k in keys if stats.get(k) is not None}
        return {"jax": out} if out else {}

    def versions(self) -> dict[str, str]:
        v = {"jax": jax.__version__}
        with contextlib.suppress(Exception):
            import jaxlib

            v["jaxlib"] = jaxlib.__version__
        return v

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "matmul_precision": "highest",
            "layout": "NHWC inside (channels-last layout plan)",
            "default_backend": jax.default_backend(),
            "x64": bool(jnp.zeros(()).dtype == jnp.float64),
            "thread_env": thread_env(),
            "versions": self.versions(),
        }
        if self.options["intra_op_threads"]:
            settings["intra_op_threads_in_force"] = _xla_cpu_threads()
        settings["not_in_force"] = not_in_force(settings)
        return settings
