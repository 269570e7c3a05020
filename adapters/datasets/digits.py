"""scikit-learn's bundled 8x8 handwritten digits: the embedded default dataset (no download).

1,797 greyscale images of the digits 0-9 (UCI "Optical Recognition of Handwritten Digits", test
part), pixel values 0..16, shipped inside scikit-learn.

The split is fixed and documented, independent of any random generator or library version: the
samples are kept in the order scikit-learn stores them, the first 1,437 are ``train`` and the last
360 are ``test`` (an 80/20 cut). ``split="all"`` gives all 1,797.

Transform: ``x / 16`` as float32, shape ``(1, 8, 8)`` (NCHW with one channel), so inputs lie in
[0, 1]. Labels are int64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dlbench.data.dataset import ArrayDataset, DatasetInfo
from dlbench.errors import ConfigError

N_TRAIN = 1437
SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    return images, labels


class DigitsDataset(ArrayDataset):
    """The digits dataset, split as documented in the module docstring.

    Args:
        root: Unused (the data ships with scikit-learn); accepted for a uniform signature.
        split: ``"train"`` (1,437), ``"test"`` (360) or ``"all"`` (1,797).

    Example:
        >>> ds = DigitsDataset(split="test")
        >>> len(ds), ds.info.input_shape
        (360, (1, 8, 8))
    """

    def __init__(self, root: str | None = None, split: str = "test") -> None:
        if split not in SPLITS:
            raise ConfigError(f"Expected digits split in {SPLITS}. Received: split={split!r}")
        images, labels = _raw()
        sl = {"train": slice(0, N_TRAIN), "test": slice(N_TRAIN, None), "all": slice(None)}[split]
        x = (images[sl] / 16.0).astype(np.float32)[:, None, :, :]
        y = labels[sl].copy()
        info = DatasetInfo(
            name="digits",
            task="classification",
            split=split,
            input_shape=(1, 8, 8),
            num_classes=10,
            num_samples=len(y),
            source="sklearn.datasets.load_digits (bundled with scikit-learn)",
            class_names=tuple(str(i) for i in range(10)),
            transform={"scale": "x / 16", "dtype": "float32", "layout": "NCHW"},
        )
        super().__init__(x, y, info)
