"""The Dataset interface: batches as NumPy, described by a :class:`DatasetInfo`.

Every backend consumes the same host arrays: inputs are float32 NCHW after the dataset's own
transform, so a benchmark feeds identical numbers to every framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlbench.errors import ConfigError, DataError

TASKS = ("classification", "detection", "regression")


class DataNotFoundError(DataError):
    """The files of a dataset (or of the split asked for) are not there at all.

    Distinct from a file that is there but corrupt, refused or of the wrong type (a plain
    :class:`~dlbench.errors.DataError`): the data check skips a split that is absent, and
    reports one that exists but does not load as an error.
    """


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is.

    Attributes:
        name: Registry name, e.g. ``"digits"``.
        task: One of ``"classification"``, ``"detection"``, ``"regression"``.
        split: The split loaded (``"train"``, ``"test"``, ``"val"``...).
        input_shape: Shape of one sample after the transform, e.g. ``(1, 8, 8)``.
        num_classes: Number of classes (0 for regression).
        class_names: Human-readable class names, in label order.
        num_samples: Number of samples in this split.
        source: Where the data came from (path, URL, or package).
        synthetic: True for generated data, which is fine for timing and never for accuracy.
        transform: A description of the transform applied (normalisation constants etc.).
    """

    name: str
    task: str
    split: str
    input_shape: tuple[int, ...]
    num_classes: int
    num_samples: int
    source: str
    class_names: tuple[str, ...] = ()
    synthetic: bool = False
    transform: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"Expected task to be one of {TASKS}. Received: task={self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["class_names"] = list(self.class_names)
        return d


@dataclass
class Batch:
    """One batch. ``inputs`` is float32 NCHW; ``targets`` depends on the task
    (int64 labels for classification, a list of per-image dicts for detection)."""

    inputs: np.ndarray
    targets: Any
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


class Dataset(ABC):
    """A split of a dataset, addressable by sample index.

    Subclasses implement :attr:`info`, ``__len__`` and :meth:`get_batch`; iteration, limits and
    sampling come from this base class.
    """

    @property
    @abstractmethod
    def info(self) -> DatasetInfo:
        """The dataset's description."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples in this split."""

    @abstractmethod
    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The samples at ``indices``, transformed, as one :class:`Batch`."""

    def batches(
        self, batch_size: int, *, limit: int | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        """Yield consecutive batches in index order.

        Args:
            batch_size: Samples per batch (a positive int).
            limit: Use only the first ``limit`` samples.
            drop_last: Drop a final batch smaller than ``batch_size``.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(
                f"Expected `batch_size` to be a positive int. Received: batch_size={batch_size!r}"
            )
        n = len(self) if limit is None else min(int(limit), len(self))
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if drop_last and stop - start < batch_size:
                return
            yield self.get_batch(np.arange(start, stop))

    def sample(self, n: int, *, seed: int = 0) -> Batch:
        """``n`` samples (with replacement only if ``n`` exceeds the split size), seeded."""
        rng = np.random.default_rng(seed)
        size = len(self)
        idx = rng.choice(size, size=n, replace=n > size)
        return self.get_batch(np.sort(idx) if n <= size else idx)

    def __repr__(self) -> str:
        i = self.info
        return f"<{type(self).__name__} {i.name}/{i.split}: {i.num_samples} x {i.input_shape}>"


class ArrayDataset(Dataset):
    """A dataset held in memory as arrays (already transformed inputs and labels)."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, info: DatasetInfo) -> None:
        if len(inputs) != len(targets):
            raise ConfigError(
                f"Expected as many targets as inputs. Received: {len(inputs)} inputs, "
                f"{len(targets)} targets"
            )
        self._inputs = inputs
        self._targets = targets
        self._info = info

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return len(self._inputs)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        return Batch(self._inputs[idx], self._targets[idx], idx)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All inputs and targets (views, not copies)."""
        return self._inputs, self._targets
