"""What every framework is given per step besides the batch: augmented images and dropout masks.

Both are computed here, once, in NumPy, from the run's seed and the step's position, so every
framework trains on the same bytes and multiplies by the same masks (the step stays
comparable step for step). Neither is inside a timed region (like data loading).

* :func:`augment_batch`: the standard CIFAR recipe: a random ``size x size`` crop of the image
  zero-padded by ``pad`` on each side (``torchvision.transforms.RandomCrop(32, padding=4)``), a
  horizontal flip with probability 1/2 (``RandomHorizontalFlip``); normalisation by per-channel
  mean / std (``Normalize``) is applied to the whole split once, before training.
* :func:`dropout_masks`: one float32 mask per dropout node, ``keep / (1 - rate)`` with ``keep``
  drawn as ``uniform >= rate`` (inverted dropout, as every framework defines it).

Example:
    >>> import numpy as np
    >>> x = np.ones((2, 3, 8, 8), np.float32)
    >>> augment_batch(x, seed=0, step=0, pad=2).shape
    (2, 3, 8, 8)
    >>> m = dropout_masks([("drop", 0.5, (4,))], batch_size=2, seed=0, step=0)["drop"]
    >>> sorted(set(m.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
"""

from __future__ import annotations

import numpy as np

from dlbench.errors import ConfigError

#: the CIFAR-10 training-set channel statistics (as the fast CIFAR recipes use them)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: streams of the per-step generators (so augmentation and dropout never share draws)
_AUGMENT, _DROPOUT = 1, 2


def _rng(seed: int, stream: int, step: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, int(step)])


def normalize(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x - mean) / std`` per channel of an NCHW batch (float32)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != len(mean) or len(mean) != len(std):
        raise ConfigError(
            f"Expected an NCHW batch with {len(mean)} channels to normalise. "
            f"Received: shape {x.shape}"
        )
    m = np.asarray(mean, np.float32)[None, :, None, None]
    s = np.asarray(std, np.float32)[None, :, None, None]
    return (x - m) / s


def augment_batch(
    x: np.ndarray, seed: int, step: int, pad: int = 4, flip: bool = True
) -> np.ndarray:
    """Random crop after zero padding by ``pad`` and a random horizontal flip, per sample.

    ``step`` is the global step number of the run (so each step draws fresh offsets); the same
    ``(seed, step)`` gives the same output everywhere.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ConfigError(f"Expected an NCHW image batch to augment. Received: shape {x.shape}")
    if not isinstance(pad, int) or pad < 0:
        raise ConfigError(f"Expected `pad` to be an int >= 0. Received: pad={pad!r}")
    n, _, h, w = x.shape
    rng = _rng(seed, _AUGMENT, step)
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    out = np.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop[:, :, ::-1] if flips[i] else crop
    return out


def dropout_masks(
    nodes: list[tuple[str, float, tuple[int, ...]]], batch_size: int, seed: int, step: int
) -> dict[str, np.ndarray]:
    """The masks of one step: node -> float32 ``(batch, *shape)`` in canonical layout."""
    rng = _rng(seed, _DROPOUT, step)
    out = {}
    for name, rate, shape in nodes:
        if not 0 <= rate < 1:
            raise ConfigError(
                f"Expected a dropout rate in [0, 1) for node {name!r}. Received: {rate!r}"
            )
        keep = rng.random((batch_size, *shape)) >= rate
        out[name] = keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate))
    return out
