"""Issue 21: metric edge cases against scikit-learn, on float16/float32/float64 inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dlbench import metrics as M
from dlbench.errors import MetricError

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.float16, np.float32, np.float64]


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol)


def _sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@st.composite
def logits_case(draw, min_classes=2, max_classes=12):
    c = draw(st.integers(min_classes, max_classes))
    n = draw(st.integers(4, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.5, 2.0, 6.0]))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    y[:c] = np.arange(c)[:n] if n >= c else y[:c]
    return y, rng.standard_normal((n, c)) * scale, c


@SETTINGS
@given(logits_case(), st.sampled_from(DTYPES))
def test_log_loss_on_reduced_precision_probabilities_matches_sklearn(case, dtype):
    y, z, c = case
    probs = _softmax(z).astype(dtype)  # float16 rows sum to 1 only within ~1e-3
    expected = _sk(skm.log_loss, y, probs.astype(np.float64), labels=list(range(c)))
    close(M.log_loss(y, probs), expected)  # auto: recognised as probabilities, not softmaxed
    close(M.log_loss(y, probs, from_logits=False), expected)


@SETTINGS
@given(logits_case(), st.sampled_from(DTYPES))
def test_logits_in_any_dtype_are_softmaxed(case, dtype):
    y, z, c = case
    zz = z.astype(dtype)
    expected = _sk(skm.log_loss, y, _softmax(zz.astype(np.float64)), labels=list(range(c)))
    close(M.log_loss(y, zz), expected, 1e-9)
    close(M.log_loss(y, zz, from_logits=True), expected, 1e-9)


@SETTINGS
@given(logits_case(min_classes=2, max_classes=2), st.sampled_from(DTYPES))
def test_binary_roc_auc_on_two_columns_honours_from_logits(case, dtype):
    y, z, _ = case
    assume(len(np.unique(y)) == 2)
    zz = z.astype(dtype).astype(np.float64)
    margin = zz[:, 1] - zz[:, 0]  # the positive class's probability, softmax(z)[:, 1], ranks so
    expected = skm.roc_auc_score(y, margin)
    close(M.roc_auc(y, z.astype(dtype), from_logits=True), expected)
    close(M.roc_auc(y, z.astype(dtype)), expected)  # auto: logits (values outside [0, 1])
    probs = _softmax(z).astype(dtype)
    close(
        M.roc_auc(y, probs, from_logits=False),
        skm.roc_auc_score(y, probs[:, 1].astype(np.float64)),
    )


def test_binary_roc_auc_ranks_the_positive_probability_not_column_1() -> None:
    # column 1 alone orders these two samples the other way round from softmax(z)[:, 1]
    y = np.array([0, 1])
    z = np.array([[-5.0, 1.0], [3.0, 4.0]])
    assert skm.roc_auc_score(y, z[:, 1]) == 1.0
    assert M.roc_auc(y, z, from_logits=True) == skm.roc_auc_score(y, _softmax(z)[:, 1]) == 0.0


def test_issue_example_float16_probabilities_are_not_softmaxed_again() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((256, 10)) * 3
    probs16 = _softmax(z).astype(np.float16)
    assert not np.allclose(probs16.astype(float).sum(1), 1.0, rtol=0, atol=1e-6)
    y = rng.integers(0, 10, 256)
    truth = _sk(skm.log_loss, y, probs16.astype(np.float64), labels=list(range(10)))
    again = _sk(skm.log_loss, y, _softmax(probs16.astype(np.float64)), labels=list(range(10)))
    assert abs(truth - again) > 0.3  # softmaxing twice is a different number
    close(M.log_loss(y, probs16), truth)
    m = M.CalibrationError()
    m.update(y, probs16)
    conf = probs16.astype(np.float64).max(1)
    assert m.compute()["ece"] == pytest.approx(M.calibration_error(y, probs16, from_logits=False))
    assert conf.max() <= 1.0


def test_rounded_probabilities_are_refused_not_guessed() -> None:
    rng = np.random.default_rng(1)
    probs = np.round(_softmax(rng.standard_normal((32, 10))), 3)  # float64, sums within ~1e-3
    y = rng.integers(0, 10, 32)
    for fn in (M.log_loss, M.roc_auc, M.calibration_error):
        with pytest.raises(MetricError, match="from_logits=False"):
            fn(np.arange(32) % 10, probs)
    expected = _sk(skm.log_loss, y, probs, labels=list(range(10)))
    close(M.log_loss(y, probs, from_logits=False), expected)


def test_binary_logit_column_log_loss_uses_sigmoid() -> None:
    y = np.array([0, 1, 1, 0])
    z = np.array([-2.0, 0.5, 3.0, 1.0])
    p = 1 / (1 + np.exp(-z))
    expected = skm.log_loss(y, p)
    close(M.log_loss(y, z, from_logits=True), expected)
    close(M.log_loss(y, z), expected)  # auto: values outside [0, 1] are logits
    close(M.log_loss(y, p), expected)


def test_from_logits_is_validated() -> None:
    for bad in ("yes", 1, 0.0):
        with pytest.raises(MetricError, match="from_logits"):
            M.LogLoss(from_logits=bad)
        with pytest.raises(MetricError, match="from_logits"):
            M.CalibrationError(from_logits=bad)


@SETTINGS
@given(st.lists(st.integers(0, 1), min_size=2, max_size=30), st.integers(0, 2**31 - 1))
def test_binary_input_defaults_to_sklearn_binary(y_list, seed):
    y = np.array(y_list)
    p = np.random.default_rng(seed).integers(0, 2, len(y))
    for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score)):
        close(_sk(ours, y, p), _sk(theirs, y, p))  # both defaults: binary, pos_label=1
    close(_sk(M.f1, y, p), _sk(skm.f1_score, y, p))
    m = M.F1Score()
    m.update(y, p)
    close(_sk(m.compute)["f1"], _sk(skm.f1_score, y, p))


def test_multiclass_default_is_macro() -> None:
    y, p = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 1, 1])
    close(M.f1(y, p), skm.f1_score(y, p, average="macro"))
    with pytest.raises(ValueError):
        skm.f1_score(y, p)  # scikit-learn's own default refuses multiclass


def test_per_class_results_cover_num_classes_and_labels() -> None:
    y, p = np.array([0, 2, 2]), np.array([0, 2, 0])
    expected = _sk(skm.recall_score, y, p, average=None, labels=list(range(4)), zero_division=0)
    close(M.recall(y, p, average=None, num_classes=4, zero_division=0), expected)
    m = M.Recall(4, average=None, zero_division=0)
    m.update(y, p)
    out = m.compute()
    assert out["labels"] == [0, 1, 2, 3]
    close(out["recall"], expected)
    got = M.precision(y, p, average=None, labels=[2, 0], zero_division=0)
    close(got, _sk(skm.precision_score, y, p, average=None, labels=[2, 0], zero_division=0))
    m = M.Precision(average="none", labels=[2, 0])
    m.update(y, p)
    assert m.compute()["labels"] == [2, 0]


def test_multilabel_input_is_a_clear_error() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0]])
    for fn in (M.f1, M.accuracy, M.precision):
        with pytest.raises(MetricError, match="Multilabel input is not supported"):
            fn(y, y)
    with pytest.raises(MetricError, match="Multilabel input is not supported"):
        M.f1([0, 2], y)  # multilabel predictions
    onehot = np.eye(3, dtype=int)[[0, 2]]
    with pytest.raises(MetricError, match="argmax"):
        M.f1(onehot, [0, 2])
    assert M.accuracy([0, 2], onehot) == 1.0  # one-hot predictions are labels by argmax
