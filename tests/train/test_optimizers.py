"""Each framework's training step against a hand-computed update (float64 NumPy reference).

The model is one dense layer on a flattened input, so the cross-entropy gradient has a closed
form: ``dlogits = (softmax(logits) - onehot) / N``, ``dW = dlogits.T @ x``, ``db = sum(dlogits)``.
Three steps with different learning rates exercise the momentum / Adam state and bias
correction.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dlbench.model.zoo.builder import GraphBuilder
from dlbench.train import TrainConfig

from .conftest import framework_params

LRS = [0.1, 0.05, 0.2]
CASES = {
    "sgd_momentum_wd": dict(optimizer="sgd", momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": dict(optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=0.001),
    "sgd_plain": dict(optimizer="sgd", momentum=0.0),
    "adam": dict(optimizer="adam", betas=(0.9, 0.999)),
    "adam_wd": dict(optimizer="adam", betas=(0.8, 0.99), weight_decay=0.05, eps=1e-6),
}


def tiny_spec():
    b = GraphBuilder("tiny", (1, 2, 2), seed=0)
    y = b.dense(b.flatten(b.input), 3, name="fc")
    return b.build([y], {"num_classes": 3})


def batches():
    rng = np.random.default_rng(1)
    return [
        (rng.standard_normal((5, 1, 2, 2)).astype(np.float32), rng.integers(0, 3, 5)) for _ in LRS
    ]


def reference(spec, cfg: TrainConfig) -> list[dict[str, np.ndarray]]:
    """The update rules of dlbench.train.config, by hand, in float64."""
    p = {"fc.weight": spec.params["fc.weight"].astype(np.float64)}
    p["fc.bias"] = spec.params["fc.bias"].astype(np.float64)
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    out = []
    for t, ((x, y), lr) in enumerate(zip(batches(), LRS), start=1):
        xf = x.reshape(len(x), -1).astype(np.float64)
        z = xf @ p["fc.weight"].T + p["fc.bias"]
        e = np.exp(z - z.max(1, keepdims=True))
        d = (e / e.sum(1, keepdims=True) - np.eye(3)[y]) / len(y)
        grads = {"fc.weight": d.T @ xf, "fc.bias": d.sum(0)}
        for k in p:
            g = grads[k] + cfg.weight_decay * p[k]
            if cfg.optimizer == "sgd":
                buf[k] = cfg.momentum * buf[k] + g
                step = g + cfg.momentum * buf[k] if cfg.nesterov else buf[k]
                p[k] = p[k] - lr * step
            else:
                b1, b2 = cfg.betas
                m[k] = b1 * m[k] + (1 - b1) * g
                v2[k] = b2 * v2[k] + (1 - b2) * g * g
                mhat, vhat = m[k] / (1 - b1**t), v2[k] / (1 - b2**t)
                p[k] = p[k] - lr * mhat / (np.sqrt(vhat) + cfg.eps)
        out.append({k: v.copy() for k, v in p.items()})
    return out


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("framework", framework_params())
def test_update_matches_hand_computed(framework, case) -> None:
    mod = importlib.import_module(f"dlbench.backends.{framework}.training")
    spec = tiny_spec()
    cfg = TrainConfig(**CASES[case])
    want = reference(spec, cfg)
    trainer = mod.make_trainer(spec, cfg)
    for (x, y), lr, ref in zip(batches(), LRS, want):
        trainer.train_step(trainer.to_device(x, y), lr)
        got = trainer.export_params()
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=2e-5, atol=2e-6, err_msg=k)


@pytest.mark.parametrize("case", ["sgd_momentum_wd", "sgd_nesterov", "adam", "adam_wd"])
def test_torch_rules_equal_torch_optim(case) -> None:
    """The hand-written torch update is exactly what torch.optim.SGD / Adam do."""
    torch = pytest.importorskip("torch")
    from dlbench.backends.torch.training import make_trainer

    spec = tiny_spec()
    cfg = TrainConfig(**CASES[case])
    ours = make_trainer(spec, cfg)
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(spec.params["fc.weight"]))
        lin.bias.copy_(torch.from_numpy(spec.params["fc.bias"]))
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            lin.parameters(),
            lr=1.0,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    else:
        opt = torch.optim.Adam(
            lin.parameters(), lr=1.0, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    for (x, y), lr in zip(batches(), LRS):
        ours.train_step(ours.to_device(x, y), lr)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            lin(torch.from_numpy(x.reshape(len(x), -1))), torch.from_numpy(y)
        )
        loss.backward()
        opt.step()
        got = ours.export_params()
        np.testing.assert_allclose(
            got["fc.weight"], lin.weight.detach().numpy(), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(got["fc.bias"], lin.bias.detach().numpy(), rtol=1e-5, atol=1e-7)
