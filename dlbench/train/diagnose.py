"""Learning curves and the diagnosis of a training run, stated in words.

A :class:`LearningCurve` holds one value per epoch of train and validation loss and accuracy
(evaluated on the whole train and validation sets after each epoch). :func:`diagnose` reads it
with fixed, documented rules, checked in this order:

1. **diverged** — a non-finite loss.
2. **not learning** — final train accuracy within ``chance_margin`` of chance (1 / classes).
3. **under-fitting** — final train accuracy below ``low_accuracy`` (the model does not even fit
   the data it sees; validation is then low too). Called *still improving* when the train loss
   fell by more than ``plateau_rel`` over the last ``window`` epochs (train longer / raise the
   learning rate), *plateaued* otherwise (a bigger model or other hyper-parameters).
4. **over-fitting** — with a validation set: the train-validation accuracy gap at the end is
   above ``max_gap`` *and* grew by more than ``gap_growth`` since the epoch of lowest validation
   loss; or the validation loss ended more than ``val_rise`` (relative) above its minimum while
   the train loss kept falling after that epoch.
5. **good fit** — otherwise.

Example:
    >>> c = LearningCurve([1.0, 0.5], [0.7, 0.9], [1.0, 0.6], [0.7, 0.88])
    >>> diagnose(c, num_classes=10).label
    'good fit'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LearningCurve:
    """Per-epoch train / validation loss and accuracy (validation lists may be empty)."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    #: mean of the step losses seen during each epoch (weights changing under it)
    step_loss_mean: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearningCurve:
        return cls(
            **{
                k: [(math.nan if v is None else float(v)) for v in d.get(k) or []]
                for k in cls.__dataclass_fields__
            }
        )


@dataclass
class Diagnosis:
    """A verdict (``label``) and the sentence that explains it (``text``)."""

    label: str  # good fit | over-fitting | under-fitting | not learning | diverged | no data
    text: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def diagnose(
    curve: LearningCurve,
    num_classes: int,
    *,
    low_accuracy: float = 0.9,
    chance_margin: float = 0.05,
    max_gap: float = 0.05,
    gap_growth: float = 0.02,
    val_rise: float = 0.1,
    plateau_rel: float = 0.01,
    window: int = 3,
) -> Diagnosis:
    """Diagnose over- and under-fitting from a learning curve (rules in the module docstring)."""
    tl, ta, vl, va = curve.train_loss, curve.train_accuracy, curve.val_loss, curve.val_accuracy
    if not tl or not ta:
        return Diagnosis("no data", "no epoch finished")
    for name, values in (("train", tl), ("validation", vl)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            return Diagnosis(
                "diverged",
                f"diverged: {name} loss became NaN/inf at epoch {bad[0] + 1} "
                "(lower the learning rate)",
            )
    chance = 1.0 / max(1, num_classes)
    final_ta = ta[-1]
    has_val = bool(va) and bool(vl)
    val_txt = f", validation {_pct(va[-1])}" if has_val else ""
    if final_ta <= chance + chance_margin:
        return Diagnosis(
            "not learning",
            f"not learning: train accuracy {_pct(final_ta)} is at chance level "
            f"({_pct(chance)}); check the learning rate and the labels",
        )
    if final_ta < low_accuracy:
        w = min(window, len(tl) - 1)
        improving = w > 0 and tl[-1] < tl[-1 - w] * (1 - plateau_rel)
        how = (
            f"still improving (train loss fell {_pct(1 - tl[-1] / tl[-1 - w])} over the last "
            f"{w} epochs): train longer or raise the learning rate"
            if improving
            else "plateaued: try a larger model or other hyper-parameters"
        )
        return Diagnosis(
            "under-fitting",
            f"under-fitting: train accuracy {_pct(final_ta)}{val_txt} "
            f"(below {_pct(low_accuracy)}); {how}",
        )
    if has_val:
        best = min(range(len(vl)), key=vl.__getitem__)
        gap_end = ta[-1] - va[-1]
        gap_best = ta[best] - va[best]
        reasons = []
        if gap_end > max_gap and gap_end - gap_best > gap_growth:
            reasons.append(
                f"the train-validation accuracy gap grew from {100 * gap_best:.1f} to "
                f"{100 * gap_end:.1f} points since epoch {best + 1}"
            )
        rise = vl[-1] / vl[best] - 1 if vl[best] > 0 else 0.0
        if rise > val_rise and tl[-1] < tl[best]:
            reasons.append(
                f"validation loss ended {_pct(rise)} above its minimum (epoch {best + 1}) while "
                "train loss kept falling"
            )
        if reasons:
            return Diagnosis(
                "over-fitting",
                f"over-fitting: {'; '.join(reasons)} (train {_pct(ta[-1])}{val_txt}); "
                f"stop near epoch {best + 1} or regularise (weight decay, more data)",
            )
        return Diagnosis(
            "good fit",
            f"good fit: train {_pct(ta[-1])}{val_txt}, gap {100 * gap_end:.1f} points",
        )
    return Diagnosis(
        "good fit",
        f"good fit on the training data: train {_pct(ta[-1])} (no validation set to check "
        "over-fitting)",
    )
