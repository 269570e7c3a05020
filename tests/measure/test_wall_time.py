"""The measured loop's wall time is net of the pauses for the confidence-interval stopping test:
those pauses are dlbench's own bookkeeping, not the model's time, and must not lower throughput."""

from __future__ import annotations

import numpy as np
import pytest
from measure_fakes import FakeClock, FakeModel

import dlbench.execution.measure as measure
from dlbench.execution.measure import time_model

US = 1000


def test_wall_time_excludes_the_stopping_test_pauses(monkeypatch) -> None:
    clock = FakeClock()
    real = measure.relative_ci_width
    checks = []

    def slow_ci_width(samples, **kw):  # as if each CI test took a whole second
        checks.append(len(samples))
        clock.advance(10**9)
        return real(samples, **kw)

    monkeypatch.setattr(measure, "relative_ci_width", slow_ci_width)
    # 10% spread: the interval is too wide at the first tests, so several pauses come
    # between calls and one comes after the last call
    durations = (np.random.default_rng(0).normal(100, 10, 10_000) * US).astype(int)
    t = time_model(
        FakeModel(clock, durations),
        np.zeros((4, 1, 4, 4), np.float32),
        clock=clock,
        warmup_min=1,
        warmup_max=2,
        warmup_min_time=0.0,
        min_iters=20,
        min_time=0.0,
        target_ci=0.01,
        max_time=100.0,
    )
    assert t.stop_reason == "target_ci" and len(checks) >= 3
    # nothing but the calls advanced the clock inside the loop, apart from the pauses
    assert t.wall_time == pytest.approx(t.samples.sum(), rel=1e-12)
    assert t.throughput == pytest.approx(4 * t.n / t.samples.sum(), rel=1e-12)
