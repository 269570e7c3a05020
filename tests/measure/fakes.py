"""Fake clocks and models for the measurement tests: nothing here measures real time."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import cycle
from typing import Any

import numpy as np


class FakeClock:
    """A nanosecond clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.now

    def advance(self, ns: int) -> None:
        self.now += int(ns)

    def wait(self, due_ns: int) -> None:
        """The server scheduler's wait: jump straight to ``due_ns``."""
        self.now = max(self.now, int(due_ns))


class FakeModel:
    """A Model whose calls take the given durations (ns) on a :class:`FakeClock`, cycled.

    Logs every method call (and, through :class:`LoggingClock`, every clock read) in ``log``.
    """

    def __init__(
        self,
        clock: FakeClock,
        durations: Iterable[int] = (1000,),
        *,
        forward_share: float = 0.5,
        raise_for_batch: dict[int, BaseException] | None = None,
    ) -> None:
        self.clock = clock
        self.durations = cycle(list(durations))
        self.forward_share = forward_share
        self.raise_for_batch = raise_for_batch or {}
        self.log: list[str] = []
        self.device = "cpu"
        self._pending = 0

    def to_device(self, batch: np.ndarray) -> Any:
        self.log.append("D")
        if batch.shape[0] in self.raise_for_batch:
            raise self.raise_for_batch[batch.shape[0]]
        return batch

    def forward(self, x: Any) -> Any:
        self.log.append("F")
        d = next(self.durations)
        # Asynchronous like a GPU: forward returns early, sync waits for the rest.
        self.clock.advance(int(d * self.forward_share))
        self._pending = d - int(d * self.forward_share)
        return x

    def sync(self, y: Any) -> None:
        self.log.append("S")
        self.clock.advance(self._pending)
        self._pending = 0

    def to_numpy(self, y: Any) -> np.ndarray:
        self.log.append("N")
        return np.asarray(y)

    def weight_bytes(self) -> int:
        return 123


class LoggingClock:
    """Wraps a clock and logs each read as ``"T"`` into a shared log."""

    def __init__(self, clock: Any, log: list[str]) -> None:
        self.clock = clock
        self.log = log

    def __call__(self) -> int:
        self.log.append("T")
        return self.clock()


class FakeDataset:
    """Enough of a Dataset for the timed scenarios."""

    def __init__(self, n: int = 64, shape: tuple[int, ...] = (1, 4, 4)) -> None:
        self.n = n
        self.shape = shape

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: Any) -> Any:
        from dlbench.data.dataset import Batch

        idx = np.asarray(indices)
        return Batch(
            inputs=np.zeros((len(idx), *self.shape), np.float32),
            targets=np.zeros(len(idx), np.int64),
            indices=idx,
        )

    def sample(self, n: int, *, seed: int = 0) -> Any:
        return self.get_batch(np.arange(n) % self.n)
