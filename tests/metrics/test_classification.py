"""Classification metrics against scikit-learn on random inputs (hypothesis)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dlbench import metrics as M
from dlbench.errors import MetricError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def labels_pair(draw, max_classes=6):
    """y_true, y_pred over a few classes; small class counts make edge cases common
    (a class never predicted, a single class, absent classes)."""
    c = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, 40))
    y_true = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    y_pred = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return y_true, y_pred, c


@st.composite
def scores_pair(draw, min_classes=2, max_classes=6, ties=True):
    c = draw(st.integers(min_classes, max_classes))
    n = draw(st.integers(2, 40))
    y_true = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    elems = st.integers(0, 3).map(float) if ties else st.floats(-5, 5, allow_nan=False)
    scores = np.array(
        draw(st.lists(st.lists(elems, min_size=c, max_size=c), min_size=n, max_size=n))
    )
    return y_true, scores, c


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12, atol=1e-12)


def _sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@SETTINGS
@given(
    labels_pair(),
    st.sampled_from(["micro", "macro", "weighted", None]),
    st.sampled_from(["warn", 0, 1, np.nan]),
)
def test_precision_recall_f1_match_sklearn(data, average, zero_division):
    y_true, y_pred, _ = data
    for ours, theirs in (
        (M.precision, skm.precision_score),
        (M.recall, skm.recall_score),
        (M.f1, skm.f1_score),
    ):
        expected = _sk(theirs, y_true, y_pred, average=average, zero_division=zero_division)
        got = _sk(ours, y_true, y_pred, average=average, zero_division=zero_division)
        close(got, expected)


@SETTINGS
@given(labels_pair(), st.sampled_from(["macro", "weighted", None]))
def test_explicit_labels_include_never_seen_classes(data, average):
    y_true, y_pred, c = data
    labels = list(range(c + 1))  # class c appears nowhere
    expected = _sk(skm.f1_score, y_true, y_pred, labels=labels, average=average, zero_division=0)
    got = _sk(
        M.f1, y_true, y_pred, labels=labels, average=average, zero_division=0, num_classes=c + 1
    )
    close(got, expected)


@SETTINGS
@given(labels_pair())
def test_accuracy_confusion_matrix_and_report_match_sklearn(data):
    y_true, y_pred, c = data
    close(M.accuracy(y_true, y_pred), skm.accuracy_score(y_true, y_pred))
    labels = list(range(c))
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, num_classes=c),
        skm.confusion_matrix(y_true, y_pred, labels=labels),
    )
    for norm in ("true", "pred", "all"):
        close(
            _sk(M.confusion_matrix, y_true, y_pred, num_classes=c, normalize=norm),
            _sk(skm.confusion_matrix, y_true, y_pred, labels=labels, normalize=norm),
        )
    ours = _sk(M.classification_report, y_true, y_pred, zero_division=0)
    theirs = _sk(skm.classification_report, y_true, y_pred, output_dict=True, zero_division=0)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, dict):
            for k, v in value.items():
                close(ours[key][k], v)
        else:
            close(ours[key], value)


@SETTINGS
@given(labels_pair(max_classes=2))
def test_binary_average(data):
    y_true, y_pred, _ = data
    assume(len(np.unique(np.r_[y_true, y_pred])) <= 2)
    close(
        _sk(M.f1, y_true, y_pred, average="binary", zero_division=0),
        _sk(skm.f1_score, y_true, y_pred, average="binary", zero_division=0),
    )


@SETTINGS
@given(scores_pair(min_classes=3), st.integers(1, 4))
def test_top_k_accuracy_matches_sklearn_with_ties(data, k):
    # (sklearn's binary case thresholds a 1-D score instead of ranking; not comparable)
    y_true, scores, c = data
    assume(k < c)
    labels = list(range(c))
    expected = skm.top_k_accuracy_score(y_true, scores, k=k, labels=labels)
    close(M.top_k_accuracy(y_true, scores, k=k), expected)


@SETTINGS
@given(scores_pair(min_classes=3, ties=False), st.sampled_from(["macro", "weighted"]))
def test_roc_auc_ovr_matches_sklearn(data, average):
    y_true, logits, c = data
    assume(len(np.unique(y_true)) == c)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = skm.roc_auc_score(
        y_true, probs, multi_class="ovr", average=average, labels=list(range(c))
    )
    close(M.roc_auc(y_true, probs, average=average), expected)
    # logits are softmaxed automatically (auto) or on request
    close(M.roc_auc(y_true, logits, average=average, from_logits=True), expected)


@SETTINGS
@given(scores_pair(min_classes=2, max_classes=2))
def test_roc_auc_binary_matches_sklearn(data):
    y_true, scores, _ = data
    assume(len(np.unique(y_true)) == 2)
    # probabilities (from_logits=False): column 1 is the positive class's score
    close(M.roc_auc(y_true, scores, from_logits=False), skm.roc_auc_score(y_true, scores[:, 1]))
    close(M.roc_auc(y_true, scores[:, 1]), skm.roc_auc_score(y_true, scores[:, 1]))
    # logits: ranked by the positive class's probability softmax(scores)[:, 1], i.e. by the
    # margin z1 - z0 (the same order, without float rounding splitting exact ties) (issue 21)
    margin = scores[:, 1] - scores[:, 0]
    close(M.roc_auc(y_true, scores, from_logits=True), skm.roc_auc_score(y_true, margin))


@SETTINGS
@given(scores_pair(ties=False))
def test_log_loss_matches_sklearn(data):
    y_true, logits, c = data
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = skm.log_loss(y_true, probs, labels=list(range(c)))
    close(M.log_loss(y_true, probs), expected)
    close(M.log_loss(y_true, logits, from_logits=True), expected)
    if np.any(logits < 0) or np.any(logits > 1):  # unmistakably logits: auto must see it
        close(M.log_loss(y_true, logits), expected)


def test_roc_auc_missing_class_is_a_clear_error():
    with pytest.raises(MetricError, match=r"without class\(es\) \[2\]"):
        M.roc_auc([0, 1, 0, 1], np.full((4, 3), 1 / 3))


def test_single_class():
    y = np.zeros(5, int)
    assert M.accuracy(y, y) == 1.0
    close(M.f1(y, y, average="macro"), skm.f1_score(y, y, average="macro"))
    np.testing.assert_array_equal(M.confusion_matrix(y, y), [[5]])


def test_streaming_equals_one_shot_and_merge():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    s = rng.normal(size=(300, 5))
    one = M.F1Score(average="weighted")
    one.update(y, s)
    a, b = M.F1Score(average="weighted"), M.F1Score(average="weighted")
    for i in range(0, 300, 64):
        (a if i % 128 else b).update(y[i : i + 64], s[i : i + 64])
    a.merge(b)
    close(a.compute()["f1"], one.compute()["f1"])
    close(one.compute()["f1"], skm.f1_score(y, s.argmax(1), average="weighted"))
    a.reset()
    with pytest.warns(UserWarning, match="before any update"):
        a.compute()


def test_merge_grows_inferred_class_count():
    a, b = M.Accuracy(), M.Accuracy()
    a.update([0, 1], [0, 1])
    b.update([3, 2], [3, 0])
    a.merge(b)
    assert a.compute()["accuracy"] == 0.75


def test_per_class_values_come_with_labels():
    out = M.Recall(average="none")
    out.update([0, 2, 2], [0, 2, 0])
    assert out.compute() == {"recall": [1.0, 0.5], "labels": [0, 2]}


def test_bad_inputs_are_clear_errors():
    with pytest.raises(MetricError, match="same number of samples"):
        M.accuracy([0, 1], [0])
    with pytest.raises(MetricError, match="num_classes=3"):
        M.Accuracy(3).update([0, 4], [0, 1])
    with pytest.raises(MetricError, match="finite"):
        M.accuracy([0, 1], np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(MetricError, match="average"):
        M.Precision(average="samples")
    with pytest.raises(MetricError, match=r"\(N, C\)"):
        M.top_k_accuracy([0, 1], [0, 1])


def test_report_from_scores():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 200)
    s = rng.normal(size=(200, 10))
    r = M.classification_report_from_scores(y, s, 10)
    close(r["accuracy"], skm.accuracy_score(y, s.argmax(1)))
    close(r["top_5_accuracy"], skm.top_k_accuracy_score(y, s, k=5, labels=list(range(10))))
    close(
        r["f1_macro"],
        skm.f1_score(y, s.argmax(1), average="macro", labels=list(range(10)), zero_division=0),
    )
    assert np.asarray(r["confusion_matrix"]).shape == (10, 10)
    assert "top_5_accuracy" not in M.classification_report_from_scores(y % 3, s[:, :3])


def test_binary_average_on_multiclass_is_a_metric_error():
    with pytest.raises(MetricError, match="binary"):
        M.f1([0, 1, 2], [0, 1, 2], average="binary")
