"""Bootstrap confidence intervals and group (fairness) metrics."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm

from dlbench import metrics as M
from dlbench.errors import MetricError


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    return y, p


def test_bootstrap_percentile_matches_manual_resampling():
    y, p = _data()
    ci = M.bootstrap_ci("accuracy", y, p, n_resamples=300, seed=3)
    rng = np.random.default_rng(3)
    stats = []
    for _ in range(300):
        idx = rng.integers(0, len(y), len(y))
        stats.append(skm.accuracy_score(y[idx], p[idx]))
    lo, hi = np.quantile(stats, [0.025, 0.975])
    assert ci["value"] == skm.accuracy_score(y, p)
    assert (ci["low"], ci["high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert ci["low"] < ci["value"] < ci["high"]


def test_bootstrap_accepts_classes_instances_callables_and_options():
    y, p = _data()
    a = M.bootstrap_ci(M.F1Score, y, p, n_resamples=50, average="macro")
    b = M.bootstrap_ci(M.F1Score(average="macro"), y, p, n_resamples=50)
    c = M.bootstrap_ci(lambda t, q: skm.f1_score(t, q, average="macro"), y, p, n_resamples=50)
    assert a["low"] == b["low"] == pytest.approx(c["low"], abs=1e-12)
    basic = M.bootstrap_ci("f1", y, p, n_resamples=50, method="basic")
    assert basic["method"] == "basic"
    with pytest.raises(MetricError, match="one number"):
        M.bootstrap_ci(M.Recall(average="none"), y, p, n_resamples=5)
    with pytest.raises(MetricError, match="method"):
        M.bootstrap_ci("accuracy", y, p, method="bca")


def test_bootstrap_skips_undefined_resamples_with_warning():
    y = np.array([0] * 19 + [1])
    s = np.linspace(0, 1, 20)
    with pytest.warns(UserWarning, match="undefined on"):
        ci = M.bootstrap_ci("roc_auc", y, s, n_resamples=40)
    assert np.isfinite(ci["low"])


def test_group_metric_gap():
    y, p = _data()
    groups = np.where(np.arange(len(y)) % 2, "even", "odd")
    r = M.group_metric("accuracy", y, p, groups)
    for g in ("even", "odd"):
        sel = groups == g
        assert r["by_group"][g] == skm.accuracy_score(y[sel], p[sel])
        assert r["support"][g] == sel.sum()
    vals = list(r["by_group"].values())
    assert r["max_gap"] == max(vals) - min(vals)
    assert r["overall"] == skm.accuracy_score(y, p)
    m = M.GroupMetric("f1", average="macro")
    m.update(y[:200], p[:200], groups[:200])
    m.update(y[200:], p[200:], groups[200:])
    assert (
        m.compute()["by_group"] == M.group_metric("f1", y, p, groups, average="macro")["by_group"]
    )


def test_group_metric_small_groups_and_errors():
    r = M.group_metric("accuracy", [0, 1, 1], [0, 1, 0], [1, 1, 2], min_group_size=2)
    assert r["too_small"] == [2] and r["max_gap"] == 0.0
    with pytest.raises(MetricError, match="one group label per sample"):
        M.group_metric("accuracy", [0, 1], [0, 1], [1])
