"""The ModelSpec op set: schemas, attribute validation, shape inference and MAC counting.

Every op a :class:`~dlbench.model.spec.ModelSpec` node may use is described here once, framework-free,
so that the spec can be checked (and its cost counted) before any backend sees it. Layout is
canonical: NCHW activations, OIHW conv weights, ``(out, in)`` dense weights.

Shapes handled here are *per-sample* shapes (the batch dimension left out); axis attributes
(``softmax.axis``, ``concat.axis``, ``transpose.perm``, ``reduce_mean.axes``, ``slice.axes``)
count the batch dimension as axis 0, like the frameworks do, and may not touch it; ``pad.pads``
lists (before, after) pairs for the non-batch axes only.

Tensors are float, except integer token ids: a graph input of dtype ``int64`` may only be read by
``embedding`` (a table lookup), directly or through the layout ops of :data:`INT_PASS_OPS`
(reshape, transpose, slice, flatten), which keep it integer (:data:`INT_INPUT_DTYPES`).

The ops are declared by family: :mod:`~dlbench.model.ops.layers` (conv2d, batch_norm, dense,
activations, softmax), :mod:`~dlbench.model.ops.spatial` (pools, flatten, upsample, pad),
:mod:`~dlbench.model.ops.tensor` (reshape, transpose, binary, concat, matmul, reduce_mean, slice,
embedding)
and :mod:`~dlbench.model.ops.sequence` (layer_norm, attention, LSTM); the machinery they share is in
:mod:`~dlbench.model.ops.schema`.

Example:
    >>> from dlbench.model.ops import OPS
    >>> sorted(OPS)[:3]
    ['add', 'avg_pool', 'batch_norm']
"""

from dlbench.model.ops import layers, sequence, spatial, tensor  # noqa: F401  (registers the ops)
from dlbench.model.ops.schema import (
    INT_INPUT_DTYPES,
    INT_PASS_OPS,
    OPS,
    Attr,
    Ctx,
    OpSchema,
    Shape,
    check_node,
    conv_out,
    count,
    get_schema,
    normalize_attrs,
    pool_geometry,
    same_pads,
)

__all__ = [
    "INT_INPUT_DTYPES",
    "INT_PASS_OPS",
    "OPS",
    "Attr",
    "Ctx",
    "OpSchema",
    "Shape",
    "check_node",
    "conv_out",
    "count",
    "get_schema",
    "normalize_attrs",
    "pool_geometry",
    "same_pads",
]
