"""TrainConfig validation and the learning-rate schedules against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlbench.errors import ConfigError
from dlbench.train import TrainConfig, lr_schedule


@pytest.mark.parametrize(
    "kw, needle",
    [
        (
            {"optimizer": "rmsprop"},
            "Expected `optimizer` in ('sgd', 'adam', 'adamw'). Received: optimizer='rmsprop'",
        ),
        ({"schedule": "linear"}, "Received: schedule='linear'"),
        ({"lr": 0}, "Expected `lr` to be a number > 0"),
        ({"momentum": 1.5}, "Received: momentum=1.5"),
        ({"batch_size": 0}, "Expected `batch_size` to be an int >= 1. Received: batch_size=0"),
        ({"epochs": 2, "warmup_epochs": 2}, "Expected `warmup_epochs` < epochs=2"),
        ({"betas": (0.9, 1.0)}, "Expected `betas` to be two numbers in [0, 1)"),
        ({"target_accuracy": 1.5}, "Received: target_accuracy=1.5"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov=True"),
        ({"folds": 0}, "Expected `folds` to be an int >= 1"),
    ],
)
def test_config_rejects_with_expected_and_received(kw, needle) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kw)
    assert needle in str(info.value)


def test_config_unknown_key_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="Unknown training option"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    cfg = TrainConfig(optimizer="adam", betas=(0.8, 0.99))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_constant_schedule() -> None:
    lrs = lr_schedule(TrainConfig(lr=0.1, epochs=3), 4)
    assert lrs.dtype == np.float32 and lrs.shape == (12,)
    np.testing.assert_array_equal(lrs, np.float32(0.1))


def test_step_schedule() -> None:
    lrs = lr_schedule(TrainConfig(lr=1.0, epochs=5, schedule="step", step_epochs=2, gamma=0.5), 3)
    want = [1.0] * 6 + [0.5] * 6 + [0.25] * 3
    np.testing.assert_allclose(lrs, want, rtol=1e-7)


def test_cosine_schedule_hand_computed() -> None:
    cfg = TrainConfig(lr=1.0, min_lr=0.1, epochs=2, schedule="cosine")
    lrs = lr_schedule(cfg, 2)  # T = 4 steps
    want = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]
    np.testing.assert_allclose(lrs, want, rtol=1e-6)
    assert lrs[0] == pytest.approx(1.0) and np.all(np.diff(lrs) < 0)


def test_warmup_then_cosine() -> None:
    cfg = TrainConfig(lr=0.4, epochs=3, schedule="cosine", warmup_epochs=1)
    lrs = lr_schedule(cfg, 4)  # W = 4, T = 12
    np.testing.assert_allclose(lrs[:4], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    want = [0.4 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 8)) for s in range(4, 12)]
    np.testing.assert_allclose(lrs[4:], want, rtol=1e-6)


def test_warmup_then_constant_and_step() -> None:
    lrs = lr_schedule(TrainConfig(lr=0.2, epochs=2, warmup_epochs=0.5), 4)
    np.testing.assert_allclose(lrs, [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], rtol=1e-6)
    cfg = TrainConfig(lr=1.0, epochs=3, schedule="step", step_epochs=1, gamma=0.1, warmup_epochs=1)
    np.testing.assert_allclose(lr_schedule(cfg, 2), [0.5, 1.0, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
