"""Regression metrics against scikit-learn; calibration error against a direct loop."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlbench import metrics as M
from dlbench.errors import MetricError

SETTINGS = settings(max_examples=40, deadline=None)
floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def regression_pair(draw):
    n = draw(st.integers(2, 50))
    shape = draw(st.sampled_from([(n,), (n, 3)]))
    return draw(arrays(np.float64, shape, elements=floats)), draw(
        arrays(np.float64, shape, elements=floats)
    )


@SETTINGS
@given(regression_pair())
def test_regression_matches_sklearn(data):
    t, p = data
    np.testing.assert_allclose(M.mse(t, p), skm.mean_squared_error(t, p), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(M.mae(t, p), skm.mean_absolute_error(t, p), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(M.r2(t, p), skm.r2_score(t, p), rtol=1e-12, atol=1e-12)


def test_regression_streams_and_checks_shapes():
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=100), rng.normal(size=100)
    m = M.MeanSquaredError()
    for i in range(0, 100, 30):
        m.update(t[i : i + 30], p[i : i + 30])
    np.testing.assert_allclose(m.compute()["mse"], skm.mean_squared_error(t, p), rtol=1e-12)
    r = M.R2Score()
    r.update(t[:50], p[:50])
    r2 = M.R2Score()
    r2.update(t[50:], p[50:])
    r.merge(r2)
    np.testing.assert_allclose(r.compute()["r2"], skm.r2_score(t, p), rtol=1e-12)
    with pytest.raises(MetricError, match="same shape"):
        M.mse([1.0, 2.0], [1.0])
    with pytest.raises(MetricError, match="finite"):
        M.mae([1.0, np.nan], [1.0, 2.0])


def _ece_loop(y, probs, n_bins, norm):
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, n_bins + 1)
    gaps, weights = [], []
    for b in range(n_bins):
        upper = edges[b + 1] if b < n_bins - 1 else np.inf
        sel = (conf >= edges[b]) & (conf < upper)
        if sel.any():
            gaps.append(abs((pred[sel] == y[sel]).mean() - conf[sel].mean()))
            weights.append(sel.mean())
    gaps, weights = np.array(gaps), np.array(weights)
    if norm == "l1":
        return float((gaps * weights).sum())
    if norm == "l2":
        return float(np.sqrt((gaps**2 * weights).sum()))
    return float(gaps.max())


@SETTINGS
@given(
    st.integers(2, 6),
    st.integers(1, 60),
    st.integers(1, 20),
    st.sampled_from(["l1", "l2", "max"]),
    st.integers(0, 2**31),
)
def test_calibration_error_matches_loop(c, n, n_bins, norm, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 3
    y = rng.integers(0, c, n)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = _ece_loop(y, probs, n_bins, norm)
    np.testing.assert_allclose(
        M.calibration_error(y, probs, n_bins=n_bins, norm=norm), expected, rtol=1e-12, atol=1e-12
    )
    # logits are declared: a small random logit row can look like probabilities (values in [0, 1]
    # summing to ~1), which the metric refuses to guess about
    np.testing.assert_allclose(
        M.calibration_error(y, logits, n_bins=n_bins, norm=norm, from_logits=True),
        expected,
        rtol=1e-12,
        atol=1e-12,
    )


def test_calibration_error_refuses_logits_that_look_like_probabilities():
    with pytest.raises(MetricError, match="Cannot tell whether"):
        M.calibration_error([0], np.array([[0.5, 0.456]]))  # sums to 0.956: ambiguous
    assert M.calibration_error([0], np.array([[0.5, 0.456]]), from_logits=True) >= 0.0


def test_calibration_perfect_and_curve():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = M.CalibrationError(n_bins=5)
    m.update([0, 1], probs)
    assert m.compute()["ece"] == 0.0
    assert m.curve()["count"][-1] == 2
