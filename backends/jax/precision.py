"""JAX at reduced precision: params and inputs cast to the 16-bit type.

JAX has no autocast: what its users do is cast the params pytree and the inputs to
``jnp.bfloat16`` (or ``jnp.float16``); every op then computes in that type (matmuls and
convolutions accumulate in float32 inside XLA). Outputs are cast back to float32 on the host.
``int8`` has no JAX inference path (skipped with that reason).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlbench.backends.jax.backend import JaxBackend, JaxModel
from dlbench.execution.precision import UnsupportedPrecision
from dlbench.model.spec import ModelSpec

DTYPES = {"bfloat16": jnp.bfloat16, "float16": jnp.float16}


class CastJaxModel(JaxModel):
    """A built JaxModel whose float params and inputs are cast to ``dtype``."""

    dtype: Any = jnp.bfloat16

    @classmethod
    def from_model(cls, model: JaxModel, dtype: Any) -> CastJaxModel:
        new = cls.__new__(cls)
        new.__dict__.update(model.__dict__)
        new.dtype = dtype

        def cast(a: Any) -> Any:
            return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

        new.params = jax.device_put(jax.tree_util.tree_map(cast, model.params), model.jax_device)
        new._weight_bytes = sum(
            int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(new.params)
        )
        return new

    def to_device(self, batch: np.ndarray) -> jax.Array:
        x = super().to_device(batch)
        return x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(jax.device_get(y)).astype(np.float32)

    def settings(self) -> dict[str, Any]:
        name = jnp.dtype(self.dtype).name
        return {
            **super().settings(),
            "precision_in_force": name,
            "how": f"cast: params and inputs {name} (JAX has no autocast)",
        }


def build_precision(
    backend: JaxBackend,
    spec: ModelSpec,
    device: str,
    precision: str,
    calibration: np.ndarray | None = None,
) -> JaxModel:
    """``spec`` in JAX at ``precision`` (see the module docstring).

    Raises:
        UnsupportedPrecision: int8.
    """
    if precision not in DTYPES:
        raise UnsupportedPrecision(
            backend.name, precision, device, "JAX has no int8 post-training quantization"
        )
    return CastJaxModel.from_model(backend.build(spec, device), DTYPES[precision])
