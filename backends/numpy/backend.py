"""The NumPy backend: a float64 interpreter of the ModelSpec, the reference for parity.

Every op is written out in :mod:`dlbench.backends.numpy.ops` in float64 from the float32
weights, so that float32 backends can be compared against a result whose own rounding error is
negligible. The model runs them through a :class:`~dlbench.backends.numpy.program.Program`
compiled at build (batch norm folded into convolutions, in-place activations, micro-batches on the
run's threads), exact up to float64 rounding.

Example:
    >>> import numpy as np, dlbench
    >>> model = dlbench.get_backend("numpy").build(dlbench.zoo.get("mlp"))
    >>> model.predict(np.zeros((2, 1, 8, 8), np.float32)).dtype
    dtype('float64')
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.options import COMMON_OPTIONS, check_common, thread_env
from dlbench.backends.numpy.ops import OPS
from dlbench.backends.numpy.program import MICRO_BATCH_BYTES, Program, blas_threads
from dlbench.model.backend import Backend, Model
from dlbench.model.spec import FLOAT_INPUT, ModelSpec, ResolvedNode


class NumpyModel(Model):
    """Runs a spec in float64 (the output is float64 too) through a compiled
    :class:`~dlbench.backends.numpy.program.Program` on the backend's threads."""

    def __init__(self, backend: NumpyBackend, spec: ModelSpec, device: str) -> None:
        super().__init__(backend, device, spec.name)
        self.spec = spec
        self.input_name = spec.inputs[0].name
        self.input_desc = spec.input_desc() if spec.inputs else FLOAT_INPUT
        self.nodes: list[ResolvedNode] = spec.resolved()
        OPS.check(self.nodes)
        self.params = {
            rn.name: {k: np.asarray(v, np.float64) for k, v in rn.params.items()}
            for rn in self.nodes
        }
        self.outputs = list(spec.outputs)
        self._weight_bytes = sum(a.nbytes for p in self.params.values() for a in p.values())
        self.program = Program(
            self.nodes, self.params, [self.input_name], self.outputs, backend.threads()
        )

    def to_device(self, batch: np.ndarray) -> np.ndarray:
        return self.input_desc.host(batch, np.float64)  # integer ids stay int64

    def forward(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        outs = self.program({self.input_name: x})
        return outs[0] if len(outs) == 1 else outs

    def sync(self, y: Any) -> None:
        return None

    def to_numpy(self, y: Any) -> np.ndarray:
        return y if isinstance(y, np.ndarray) else np.asarray(y[0])

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)


class NumpyBackend(Backend):
    """Float64 NumPy interpreter. Options: the common ones; ``intra_op_threads`` is how many
    micro-batches run at once (each with a one-thread BLAS), by default the BLAS's own threads."""

    name: ClassVar[str] = "numpy"
    requires: ClassVar[tuple[str, ...]] = ("numpy",)
    default_options: ClassVar[dict[str, Any]] = dict(COMMON_OPTIONS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_common(self.name, self.options)
        verify(self.name, self.settings())

    def threads(self) -> int:
        """Threads a model runs on: ``intra_op_threads``, else the BLAS's threads (else 1)."""
        return int(self.options["intra_op_threads"] or blas_threads() or 1)

    def build(self, spec: ModelSpec, device: str = "cpu") -> NumpyModel:
        self.check_device(device)
        return NumpyModel(self, spec.validate(), device)

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "mode": "interpreter",
            "compute_dtype": "float64",
            # how a model runs (backends/numpy/program.py): micro-batches on the threads, each
            # with a one-thread BLAS; batch norm folded into the convolution before it
            "program": {
                "threads": self.threads(),
                "blas_threads_while_running": 1,
                "micro_batch_bytes": MICRO_BATCH_BYTES,
                "batch_norm_folded": True,
            },
            "thread_env": thread_env(),
            "versions": self.versions(),
        }
        if self.options["intra_op_threads"]:
            settings["intra_op_threads_in_force"] = self.threads()
        settings["not_in_force"] = not_in_force(settings)
        return settings
