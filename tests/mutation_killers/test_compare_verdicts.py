"""``dlbench compare`` verdicts that a wrong direction or a dropped test condition would flip:
lower-is-better metrics by name, the significance level, the interval of the median ratio, and
every fairness key."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dlbench.analysis.compare import UnfairComparisonError, compare


@pytest.fixture(scope="module")
def base(docs_module):
    return docs_module.make_document(backends=("numpy", "torch"), batch_sizes=(1, 8), n=100)


@pytest.fixture(scope="module")
def docs_module():
    from tests.conftest import _report_docs

    return _report_docs()


def _with_metrics(doc, **metrics):
    out = copy.deepcopy(doc)
    cell = next(c for c in out["cells"] if c["id"] == "torch/cpu/accuracy/bs256")
    cell["metrics"] = dict(metrics)
    return out


def _verdict(a, b, cell="torch/cpu/accuracy/bs256", **kw):
    return next(c for c in compare(a, b, **kw).changes if c.cell == cell).verdict


@pytest.mark.parametrize(
    ("name", "before", "after", "verdict"),
    [
        ("accuracy", 0.90, 0.95, "improvement"),
        ("accuracy", 0.90, 0.85, "regression"),
        ("loss", 0.30, 0.50, "regression"),
        ("loss", 0.50, 0.30, "improvement"),
        ("val_loss", 0.30, 0.50, "regression"),
        ("top1_error", 0.10, 0.20, "regression"),
        ("rmse", 0.20, 0.10, "improvement"),
        ("mae_test", 0.20, 0.40, "regression"),
    ],
)
def test_metric_direction_by_name(base, name, before, after, verdict) -> None:
    assert _verdict(
        _with_metrics(base, **{name: before}), _with_metrics(base, **{name: after})
    ) == (verdict)


def test_metric_change_within_tolerance_is_unchanged(base) -> None:
    a, b = _with_metrics(base, accuracy=0.9), _with_metrics(base, accuracy=0.9005)
    assert _verdict(a, b) == "unchanged"
    assert _verdict(a, b, metric_tolerance=1e-4) == "improvement"


def _with_samples(doc, a_or_b_samples, cell="torch/cpu/latency/bs1"):
    out = copy.deepcopy(doc)
    c = next(c for c in out["cells"] if c["id"] == cell)
    c["timing"]["samples_s"] = [float(v) for v in a_or_b_samples]
    return out


def test_nothing_is_significant_at_alpha_zero(docs_module, base) -> None:
    slowed = docs_module.rerun(base, seed=3, slow={"torch": 1.5})
    assert _verdict(base, slowed, cell="torch/cpu/latency/bs1") == "regression"
    assert _verdict(base, slowed, cell="torch/cpu/latency/bs1", alpha=0.0) == "unchanged"


def test_same_median_different_spread_is_unchanged(base) -> None:
    """The rank test sees b as faster (p tiny), but both medians are exactly 1 ms and the
    interval of their ratio is [1, 1]: not a significant change of the median."""
    a = _with_samples(base, np.r_[np.full(60, 1e-3), np.full(40, 2e-3)])
    b = _with_samples(base, np.r_[np.full(40, 0.5e-3), np.full(60, 1e-3)])
    change = next(c for c in compare(a, b).changes if c.cell == "torch/cpu/latency/bs1")
    assert change.p_value < 1e-6 and change.ratio == 1.0
    assert change.ratio_ci[0] <= 1.0 <= change.ratio_ci[1]
    assert change.verdict == "unchanged"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("precision", "float16"),
        ("inter_op_threads", 4),
        ("dataset_options", {"size": 3}),
        ("model_options", {"width": 2}),
        ("accuracy_limit", 10),
    ],
)
def test_every_config_difference_is_unfair(base, key, value) -> None:
    other = copy.deepcopy(base)
    other["config"][key] = value
    with pytest.raises(UnfairComparisonError, match=key):
        compare(base, other)
