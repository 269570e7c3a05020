"""The default averaging of precision/recall/F1 ("auto"): scikit-learn's binary for two classes,
macro for more; and top-k's tie rule (a tie is a miss unless the true class comes first)."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm

from dlbench import metrics as M

Y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
P = np.array([0, 0, 1, 2, 1, 0, 2, 2, 2, 1, 0, 2])


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1, skm.f1_score)],
)
def test_auto_average_is_macro_for_multiclass_binary_for_two(ours, theirs) -> None:
    macro, micro = theirs(Y, P, average="macro"), theirs(Y, P, average="micro")
    assert abs(macro - micro) > 0.01  # the case can tell them apart
    assert ours(Y, P) == pytest.approx(macro, abs=1e-12)
    yb, pb = (Y > 0).astype(int), (P > 0).astype(int)
    assert ours(yb, pb) == pytest.approx(theirs(yb, pb, average="binary"), abs=1e-12)
    assert ours(yb, pb) != pytest.approx(theirs(yb, pb, average="macro"), abs=1e-6)


def test_top_k_counts_ties_against_the_true_class_after_it() -> None:
    scores = np.array(
        [
            [0.5, 0.5, 0.0],  # true 1 ties with class 0, which comes first: rank 2
            [0.5, 0.5, 0.0],  # true 0 ties with class 1, which comes after: rank 1
            [0.2, 0.3, 0.5],  # true 0: rank 3
        ]
    )
    y = np.array([1, 0, 0])
    assert M.top_k_accuracy(y, scores, k=1) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(y, scores, k=2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(y, scores, k=2) == pytest.approx(
        skm.top_k_accuracy_score(y, scores, k=2, labels=[0, 1, 2])
    )
