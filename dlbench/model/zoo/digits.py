"""``digits_cnn``: a small CNN for 8x8 digits, with shipped trained weights.

conv3x3(16)-relu -> conv3x3(32)-relu-maxpool2 -> conv3x3(64)-relu-maxpool2 -> flatten ->
dense(10), all convolutions "same"-padded; no batch norm, no dropout, so it trains identically in
every framework. 25,866 parameters for 10 classes.

The weights in ``dlbench/model/zoo/weights/digits_cnn.{json,npz}`` were trained by dlbench's own
training code (``dlbench train``) on the digits *train* split only; reproduce them with
``python benchmarks/train_default_weights.py``. ``pretrained`` defaults to True exactly when
they fit (input ``(1, 8, 8)``, 10 classes).

Example:
    >>> from dlbench import zoo
    >>> zoo.get("digits_cnn").metadata["pretrained"]
    True
    >>> zoo.get("digits_cnn", pretrained=False).stats()["params"]
    25866
"""

from __future__ import annotations

from pathlib import Path

from dlbench.errors import ConfigError, SpecError
from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS = WEIGHTS_DIR / "digits_cnn"
PRETRAINED_SHAPE = (1, 8, 8)
PRETRAINED_CLASSES = 10


def _graph(num_classes: int, input_shape: tuple[int, ...], seed: int, softmax: bool) -> ModelSpec:
    b = GraphBuilder("digits_cnn", input_shape, seed)
    x = b.act(b.conv(b.input, 16, 3, padding=1, bias=True, name="conv1"), "relu", name="relu1")
    x = b.act(b.conv(x, 32, 3, padding=1, bias=True, name="conv2"), "relu", name="relu2")
    x = b.add("max_pool", [x], {"kernel_size": 2}, name="pool1")
    x = b.act(b.conv(x, 64, 3, padding=1, bias=True, name="conv3"), "relu", name="relu3")
    x = b.add("max_pool", [x], {"kernel_size": 2}, name="pool2")
    y = b.dense(b.flatten(x), num_classes, name="head")
    if softmax:
        y = b.act(y, "softmax", name="probs")
    return b.build(
        [y],
        {
            "task": "classification",
            "num_classes": num_classes,
            "output": "probabilities" if softmax else "logits",
            "description": "CNN conv16-conv32-pool-conv64-pool-dense (digits)",
            "pretrained": False,
        },
    )


def digits_cnn(
    num_classes: int = 10,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    softmax: bool = False,
    pretrained: bool | None = None,
) -> ModelSpec:
    """The digits CNN; ``pretrained`` (default: when the shape and classes fit) loads the
    shipped weights, otherwise the weights are seeded (``seed``)."""
    shape = tuple(input_shape or PRETRAINED_SHAPE)
    fits = shape == PRETRAINED_SHAPE and num_classes == PRETRAINED_CLASSES
    if pretrained is None:
        pretrained = fits
    spec = _graph(num_classes, shape, seed, softmax)
    if not pretrained:
        return spec
    if not fits:
        raise ConfigError(
            f"digits_cnn's shipped weights expect input_shape={PRETRAINED_SHAPE} and "
            f"num_classes={PRETRAINED_CLASSES}. Received: input_shape={shape}, "
            f"num_classes={num_classes} (pass pretrained=False for seeded weights)"
        )
    try:
        trained = ModelSpec.load(WEIGHTS)
    except SpecError as exc:
        raise ConfigError(
            f"digits_cnn's shipped weights cannot be read ({exc}); reproduce them with "
            "`python benchmarks/train_default_weights.py`"
        ) from None
    if set(trained.params) != set(spec.params) or any(
        trained.params[k].shape != spec.params[k].shape for k in spec.params
    ):
        raise ConfigError(f"{WEIGHTS}.npz does not match the digits_cnn graph")
    spec.params = {k: trained.params[k].copy() for k in spec.params}
    info = trained.metadata.get("trained", {})
    spec.metadata = {**spec.metadata, "pretrained": True, "trained": info}
    spec._invalidate()
    return spec.validate()
