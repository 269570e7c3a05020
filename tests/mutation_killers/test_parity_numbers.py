"""Parity's numbers and verdict on hand-made cases where each rule decides alone."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.analysis import parity

TOL = 1e-4


def _informative(row0: list[float]) -> np.ndarray:
    """A batch whose first row is ``row0`` and whose other rows vary (an informative reference)."""
    rest = np.random.default_rng(0).uniform(-0.5, 0.5, (3, len(row0)))
    return np.vstack([np.asarray(row0, np.float64), rest])


def test_argmax_flip_within_the_value_bound_fails() -> None:
    """Every value is within the bound (1e-4 of the scale 1.0), but sample 0's argmax moves to
    a class 1.5 bounds below the top: not a near-tie, so parity fails on the argmax alone."""
    bound = TOL * 1.0
    ref = _informative([1.0, 1.0 - 1.5 * bound, 0.0])
    out = ref.copy()
    out[0, 0] -= 0.8 * bound
    out[0, 1] += 0.75 * bound
    r = parity.compare(ref, out, tolerance=TOL)
    assert r["max_abs_diff"] <= bound and r["informative"]
    assert r["argmax_agreement"] == pytest.approx(0.75) and r["argmax_near_ties"] == 0
    assert r["ok"] is False and parity.failed(r)


def test_max_rel_diff_is_relative_to_the_reference() -> None:
    ref = _informative([1.0, -2.0, 0.5])
    out = ref.copy()
    out[0] = [2.0, -2.0, 0.5]  # |out - ref| / |ref| = 1.0 at [0, 0] (0.5 relative to out)
    r = parity.compare(ref, out, tolerance=TOL)
    want = np.max(np.abs(out - ref) / np.maximum(np.abs(ref), np.abs(ref).max() * 1e-6))
    assert r["max_rel_diff"] == pytest.approx(want, rel=1e-12)
    assert r["max_rel_diff"] == pytest.approx(1.0, rel=1e-12)
    assert r["max_abs_diff"] == pytest.approx(1.0, rel=1e-12)
    assert r["output_scale"] == 2.0
