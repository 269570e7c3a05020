"""The fast-CIFAR recipe pieces against PyTorch's own implementations (independent references):
AdamW, gradient clipping, label smoothing (every framework vs ``torch.optim`` /
``clip_grad_norm_`` / ``CrossEntropyLoss``), the one-cycle schedule vs ``OneCycleLR``, and the
NumPy augmentation (crop with padding, flip) and the ``cifar`` preset."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dlbench.errors import ConfigError
from dlbench.train import TrainConfig, lr_schedule
from dlbench.train.augment import augment_batch, normalize

from .conftest import framework_params
from .test_optimizers import LRS, batches, tiny_spec

CASES = {
    "adamw": dict(optimizer="adamw", weight_decay=0.1, betas=(0.9, 0.99)),
    "clip": dict(optimizer="sgd", momentum=0.9, clip_grad_norm=0.05),
    "smoothing": dict(optimizer="sgd", momentum=0.0, label_smoothing=0.2),
}


def torch_reference(spec, cfg: TrainConfig) -> list[dict[str, np.ndarray]]:
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(spec.params["fc.weight"]))
        lin.bias.copy_(torch.from_numpy(spec.params["fc.bias"]))
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(
            lin.parameters(), lr=1.0, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.SGD(lin.parameters(), lr=1.0, momentum=cfg.momentum)
    out = []
    for (x, y), lr in zip(batches(), LRS):
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)(
            lin(torch.from_numpy(x.reshape(len(x), -1))), torch.from_numpy(y)
        )
        loss.backward()
        if cfg.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(lin.parameters(), cfg.clip_grad_norm)
            assert float(norm) > cfg.clip_grad_norm  # the case really clips
        opt.step()
        out.append(
            {
                "fc.weight": lin.weight.detach().numpy().copy(),
                "fc.bias": lin.bias.detach().numpy().copy(),
            }
        )
    return out


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("framework", framework_params())
def test_recipe_update_matches_torch(framework: str, case: str) -> None:
    spec = tiny_spec()
    cfg = TrainConfig(**CASES[case])
    want = torch_reference(spec, cfg)
    plain = torch_reference(spec, TrainConfig(optimizer="sgd", momentum=cfg.momentum))
    assert np.abs(plain[-1]["fc.weight"] - want[-1]["fc.weight"]).max() > 1e-4  # it matters
    trainer = importlib.import_module(f"dlbench.backends.{framework}.training").make_trainer(
        spec, cfg
    )
    for (x, y), lr, ref in zip(batches(), LRS, want):
        trainer.train_step(trainer.to_device(x, y), lr)
        got = trainer.export_params()
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=2e-5, atol=2e-6, err_msg=k)


def test_one_cycle_equals_torch_one_cycle_lr() -> None:
    torch = pytest.importorskip("torch")
    cfg = TrainConfig(lr=0.4, epochs=3, schedule="onecycle", pct_start=0.25)
    ours = lr_schedule(cfg, 9)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.4)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.4, total_steps=27, pct_start=0.25)
    ref = []
    for _ in range(27):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_augment_crop_and_flip() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 6, 6)).astype(np.float32)
    a = augment_batch(x, seed=3, step=7, pad=2)
    np.testing.assert_array_equal(a, augment_batch(x, seed=3, step=7, pad=2))  # reproducible
    assert not np.array_equal(a, augment_batch(x, seed=3, step=8, pad=2))  # fresh per step
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    flipped = 0
    for i in range(16):  # each output is one window of the padded image, maybe mirrored
        windows = [
            (padded[i, :, dy : dy + 6, dx : dx + 6], f)
            for dy in range(5)
            for dx in range(5)
            for f in (False, True)
        ]
        hits = [f for w, f in windows if np.array_equal(a[i], w[:, :, ::-1] if f else w)]
        assert hits, i
        flipped += hits[0]
    assert 0 < flipped < 16
    with pytest.raises(ConfigError, match="NCHW"):
        augment_batch(x[0], seed=0, step=0)


def test_normalize_and_preset() -> None:
    x = np.ones((2, 3, 4, 4), np.float32)
    y = normalize(x, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    assert y[:, 0].max() == 1 and y[:, 1].max() == 3 and y[:, 2].max() == 0.5
    cfg = TrainConfig.preset("cifar", epochs=2)
    assert cfg.schedule == "onecycle" and cfg.augment == "crop_flip" and cfg.epochs == 2
    with pytest.raises(ConfigError, match="Expected a preset in"):
        TrainConfig.preset("imagenet")
    with pytest.raises(ConfigError, match="Expected `augment` in"):
        TrainConfig(augment="mixup")
