"""A recurrent classifier: the rows of an image read as a sequence by an LSTM."""

from __future__ import annotations

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.classic import _finish


def lstm(
    num_classes: int = 10,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    hidden: int = 128,
) -> ModelSpec:
    """Row LSTM: (C, H, W) -> H steps of C*W features -> one LSTM layer -> last hidden state
    -> linear head. Default input ``(3, 32, 32)``: 117,002 parameters for 10 classes.
    """
    shape = tuple(input_shape or (3, 32, 32))
    b = GraphBuilder("lstm", shape, seed)
    x = b.input
    if len(shape) == 3:
        c, h, w = shape
        x = b.add("transpose", [x], {"perm": [0, 2, 1, 3]}, name="rows")
        x = b.add("reshape", [x], {"shape": [h, c * w]}, name="sequence")
    f = b.shape(x)[-1]
    bound = 1 / hidden**0.5
    x = b.add(
        "lstm",
        [x],
        {"hidden_size": hidden},
        {
            "weight_ih": b.uniform((4 * hidden, f), bound),
            "weight_hh": b.uniform((4 * hidden, hidden), bound),
            "bias_ih": b.uniform((4 * hidden,), bound),
            "bias_hh": b.uniform((4 * hidden,), bound),
        },
        name="lstm",
    )
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description=f"row LSTM ({hidden} hidden)")
