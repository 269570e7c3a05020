"""The diagnosis rules, one case each."""

from __future__ import annotations

import math

from dlbench.train import LearningCurve, diagnose


def curve(tl, ta, vl=(), va=()) -> LearningCurve:
    return LearningCurve(list(tl), list(ta), list(vl), list(va))


def test_good_fit() -> None:
    d = diagnose(
        curve([1.0, 0.3, 0.1], [0.7, 0.95, 0.98], [1.0, 0.35, 0.15], [0.7, 0.94, 0.96]), 10
    )
    assert d.label == "good fit" and "gap 2.0 points" in d.text


def test_overfitting_growing_gap() -> None:
    d = diagnose(
        curve(
            [1.0, 0.4, 0.2, 0.05],
            [0.7, 0.92, 0.97, 1.0],
            [1.0, 0.5, 0.45, 0.47],
            [0.7, 0.90, 0.90, 0.88],
        ),
        10,
    )
    assert d.label == "over-fitting"
    assert "gap grew from 7.0 to 12.0 points since epoch 3" in d.text


def test_overfitting_rising_validation_loss() -> None:
    d = diagnose(
        curve(
            [1.0, 0.3, 0.1, 0.01],
            [0.7, 0.95, 0.99, 1.0],
            [1.0, 0.3, 0.4, 0.6],
            [0.7, 0.95, 0.97, 0.98],
        ),
        10,
    )
    assert (
        d.label == "over-fitting"
        and "validation loss ended 100.0% above its minimum (epoch 2)" in d.text
    )


def test_underfitting_both_low_still_improving_or_plateaued() -> None:
    d = diagnose(
        curve(
            [2.0, 1.5, 1.2, 1.0],
            [0.3, 0.45, 0.55, 0.6],
            [2.0, 1.6, 1.3, 1.1],
            [0.3, 0.4, 0.5, 0.58],
        ),
        10,
    )
    assert (
        d.label == "under-fitting" and "still improving" in d.text and "validation 58.0%" in d.text
    )
    d = diagnose(curve([2.0, 1.0, 1.0, 1.0, 1.0], [0.3, 0.6, 0.6, 0.6, 0.6]), 10)
    assert d.label == "under-fitting" and "plateaued" in d.text


def test_not_learning_and_diverged_and_empty() -> None:
    assert diagnose(curve([2.3, 2.3], [0.1, 0.12]), 10).label == "not learning"
    d = diagnose(curve([2.3, math.nan], [0.1, 0.1]), 10)
    assert d.label == "diverged" and "epoch 2" in d.text
    assert diagnose(LearningCurve(), 10).label == "no data"


def test_no_validation_set() -> None:
    d = diagnose(curve([1.0, 0.1], [0.8, 0.99]), 10)
    assert d.label == "good fit" and "no validation set" in d.text
