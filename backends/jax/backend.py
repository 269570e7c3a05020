"""The JAX backend: a ModelSpec becomes a pure function ``apply(params, x)`` over a pytree.

Modes: ``jit`` (``jax.jit``, compiled by XLA once per input shape) and ``eager`` (op by op).
Outputs are synced with ``block_until_ready``. Matmuls and convolutions use
``Precision.HIGHEST`` for float32. JAX takes its threads from ``XLA_FLAGS`` (set by the runner
before import); the backend records what was in force.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("jax").build(dlbench.zoo.get("mlp"))
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.options import COMMON_OPTIONS, check_choice, check_common, thread_env
from dlbench.backends.jax.ops import OPS, prepare
from dlbench.errors import BackendError
from dlbench.model.backend import Backend, Model, parse_device
from dlbench.model.spec import ModelSpec

MODES = ("jit", "eager")


def make_apply(
    spec: ModelSpec,
) -> tuple[Callable[[dict, jax.Array], jax.Array], dict[str, dict[str, np.ndarray]]]:
    """``(apply, params)``: a pure function of a params pytree and an NCHW batch."""
    plan = spec.resolved()
    OPS.check(plan)
    params = {rn.name: prepare(rn) for rn in plan}
    input_name, outputs = spec.inputs[0].name, list(spec.outputs)

    def apply(params: dict, x: jax.Array) -> jax.Array:
        return OPS.run(plan, {input_name: x}, params)[outputs[0]]

    return apply, params


class JaxModel(Model):
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
        return jax.device_put(np.asarray(batch, dtype=np.float32), self.jax_device)

    def forward(self, x: jax.Array) -> jax.Array:
        return self.apply(self.params, x)

    def sync(self, y: Any) -> None:
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
        apply, params = make_apply(spec.validate())
        return JaxModel(self, apply, params, device, self._device(device), spec.name)

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
            "default_backend": jax.default_backend(),
            "x64": bool(jnp.zeros(()).dtype == jnp.float64),
            "thread_env": thread_env(),
            "versions": self.versions(),
        }
        if self.options["intra_op_threads"]:
            settings["intra_op_threads_in_force"] = _xla_cpu_threads()
        settings["not_in_force"] = not_in_force(settings)
        return settings
