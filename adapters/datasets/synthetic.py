"""Synthetic data: random inputs of any shape, for timing only.

Every result made with it says so: ``info.synthetic`` is True, ``info.source`` starts with
``"synthetic"``. Its accuracy means nothing; its speed is as real as any other input's.

Example:
    >>> from dlbench import datasets
    >>> ds = datasets.load("synthetic", shape=(3, 64, 64), num_classes=100, num_samples=256)
    >>> ds.info.synthetic, ds.get_batch([0, 1]).inputs.shape
    (True, (2, 3, 64, 64))
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlbench.data.dataset import Batch, Dataset, DatasetInfo
from dlbench.errors import ConfigError


class SyntheticDataset(Dataset):
    """Seeded random inputs (standard normal, float32) and labels.

    Sample ``i`` is the same whatever the batch it is read in, so runs are reproducible.

    Args:
        root: Ignored (accepted for a uniform ``load`` signature).
        split: A name for the split; different splits give different data.
        shape: Shape of one input, e.g. ``(3, 224, 224)``.
        num_classes: Number of classes; 0 gives a regression target (one float per sample).
        num_samples: Samples in the split.
        seed: Random seed.
        vocab_size: When set, inputs are int64 token ids drawn uniformly from
            ``[0, vocab_size)`` (for a text model whose input is integer ids) instead of
            standard normal float32 values.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "test",
        *,
        shape: Sequence[int] = (3, 32, 32),
        input_shape: Sequence[int] | None = None,
        num_classes: int = 10,
        num_samples: int = 1024,
        seed: int = 0,
        vocab_size: int | None = None,
    ) -> None:
        shape = tuple(int(s) for s in (input_shape if input_shape is not None else shape))
        if not shape or any(s < 1 for s in shape):
            raise ConfigError(
                f"Expected `shape` to be a tuple of positive ints. Received: shape={shape!r}"
            )
        if int(num_samples) < 1:
            raise ConfigError(
                f"Expected `num_samples` to be a positive int. Received: {num_samples!r}"
            )
        if int(num_classes) < 0:
            raise ConfigError(
                f"Expected `num_classes` >= 0 (0 for regression). Received: {num_classes!r}"
            )
        if vocab_size is not None and (
            isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1
        ):
            raise ConfigError(
                f"Expected `vocab_size` to be a positive int (token ids in [0, vocab_size)). "
                f"Received: vocab_size={vocab_size!r}"
            )
        self.vocab_size = vocab_size
        self.shape = shape
        self.num_classes = int(num_classes)
        self.seed = int(seed)
        self._split_key = zlib.crc32(split.encode())
        rng = np.random.default_rng([self.seed, self._split_key, 0])
        n = int(num_samples)
        if self.num_classes:
            self._targets = rng.integers(0, self.num_classes, size=n).astype(np.int64)
        else:
            self._targets = rng.standard_normal(n).astype(np.float32)
        self._info = DatasetInfo(
            name="synthetic",
            task="classification" if self.num_classes else "regression",
            split=split,
            input_shape=shape,
            num_classes=self.num_classes,
            num_samples=n,
            source=(
                f"synthetic: random normal inputs, seed={self.seed} (timing only, never accuracy)"
                if vocab_size is None
                else f"synthetic: random token ids in [0, {vocab_size}), seed={self.seed} "
                "(timing only, never accuracy)"
            ),
            class_names=tuple(f"class_{i}" for i in range(self.num_classes)),
            synthetic=True,
            transform=(
                {"distribution": "standard normal", "dtype": "float32"}
                if vocab_size is None
                else {"distribution": f"uniform token ids [0, {vocab_size})", "dtype": "int64"}
            ),
        )

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return len(self._targets)

    def _sample(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._split_key, 1, i])
        if self.vocab_size is not None:
            return rng.integers(0, self.vocab_size, self.shape, dtype=np.int64)
        return rng.standard_normal(self.shape, dtype=np.float32)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(
                f"Expected indices in [0, {len(self)}). Received min {idx.min()}, max {idx.max()}"
            )
        dtype = np.float32 if self.vocab_size is None else np.int64
        x = np.empty((len(idx), *self.shape), dtype=dtype)
        for k, i in enumerate(idx):
            x[k] = self._sample(int(i))
        return Batch(x, self._targets[idx].copy(), idx)
