"""Train-mode semantics, identical in torch, TensorFlow and JAX, against independent references.

* batch norm: the output with batch statistics and the running statistics after a step, against
  a float64 NumPy reference of PyTorch's definition (momentum 0.1, biased variance in the output,
  unbiased in the running variance); the biased-running-variance variant is shown to fail it;
* dropout: the loss with the step's shared mask against a NumPy forward pass with that mask;
  another mask gives another loss; eval mode is the identity;
* zoo networks (resnet20, vit_tiny, lstm at a small size by default; vgg11_bn and mobilenet_v2,
  whose smallest input is 32x32, and full sizes in ``slow``): the loss of every step agrees with
  PyTorch's within 1e-4 relative, and so do the trained weights and running statistics.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest

from dlbench import zoo
from dlbench.errors import BackendError
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.train import TrainConfig
from dlbench.train.augment import dropout_masks

from .conftest import FRAMEWORKS, framework_params

INSTALLED = [f for f in FRAMEWORKS if importlib.util.find_spec(f) is not None]
CONFIG = TrainConfig(epochs=1, batch_size=8, lr=0.02, weight_decay=5e-4, intra_op_threads=1)
LOSS_RTOL = 1e-4


def trainer(framework: str, spec, config: TrainConfig = CONFIG):
    return importlib.import_module(f"dlbench.backends.{framework}.training").make_trainer(
        spec, config
    )


def bn_spec():
    b = GraphBuilder("bn", (2, 3, 3), seed=0)
    rng = np.random.default_rng(3)
    params = {
        "weight": rng.uniform(0.5, 1.5, 2).astype(np.float32),
        "bias": rng.standard_normal(2).astype(np.float32),
        "mean": rng.standard_normal(2).astype(np.float32),
        "var": rng.uniform(0.5, 2.0, 2).astype(np.float32),
    }
    y = b.add("batch_norm", [b.input], {"eps": 1e-5}, params, name="bn")
    y = b.dense(b.flatten(y), 3, name="fc")
    return b.build([y], {"num_classes": 3})


def softmax_ce(z: np.ndarray, y: np.ndarray) -> float:
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def bn_reference(spec, x: np.ndarray, y: np.ndarray, unbiased: bool = True):
    """PyTorch's train-mode batch norm in float64: (loss, running mean, running var)."""
    p = {k: v.astype(np.float64) for k, v in spec.params.items()}
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    h = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    h = h * p["bn.weight"][None, :, None, None] + p["bn.bias"][None, :, None, None]
    z = h.reshape(len(x), -1) @ p["fc.weight"].T + p["fc.bias"]
    n = x.size // x.shape[1]
    run_var = var * (n / (n - 1) if unbiased else 1.0)
    return (
        softmax_ce(z, y),
        0.9 * p["bn.mean"] + 0.1 * mean,
        0.9 * p["bn.var"] + 0.1 * run_var,
    )


@pytest.mark.parametrize("framework", framework_params())
def test_batch_norm_train_mode_matches_pytorch_definition(framework: str) -> None:
    spec = bn_spec()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 2, 3, 3)) * 2 + 1).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    t = trainer(framework, spec)
    loss = t.train_step(t.to_device(x, y), 0.1)
    ref_loss, ref_mean, ref_var = bn_reference(spec, x, y)
    out = t.export_params()
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(out["bn.mean"], ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["bn.var"], ref_var, rtol=1e-5, atol=1e-6)
    _, _, biased = bn_reference(spec, x, y, unbiased=False)
    assert np.abs(out["bn.var"] - biased).max() > 1e-3  # the check tells the two apart
    # eval mode normalises with the updated running statistics
    p = {k: v.astype(np.float64) for k, v in out.items()}
    h = (x - p["bn.mean"][None, :, None, None]) / np.sqrt(p["bn.var"][None, :, None, None] + 1e-5)
    h = h * p["bn.weight"][None, :, None, None] + p["bn.bias"][None, :, None, None]
    z = h.reshape(len(x), -1) @ p["fc.weight"].T + p["fc.bias"]
    np.testing.assert_allclose(t.predict(x), z, rtol=1e-4, atol=1e-5)


def dropout_spec():
    b = GraphBuilder("drop", (6,), seed=0)
    h = b.add("dropout", [b.dense(b.input, 5, name="fc1")], {"rate": 0.4}, name="drop")
    return b.build([b.dense(h, 3, name="fc2")], {"num_classes": 3})


@pytest.mark.parametrize("framework", framework_params())
def test_dropout_uses_the_shared_mask(framework: str) -> None:
    spec = dropout_spec()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 0])
    p = {k: v.astype(np.float64) for k, v in spec.params.items()}
    h = x @ p["fc1.weight"].T + p["fc1.bias"]
    t = trainer(framework, spec)
    assert [d[0] for d in t.dropout] == ["drop"]
    mask = dropout_masks(t.dropout, 4, seed=0, step=0)
    other = dropout_masks(t.dropout, 4, seed=0, step=1)
    assert not np.array_equal(mask["drop"], other["drop"])
    want = softmax_ce((h * mask["drop"]) @ p["fc2.weight"].T + p["fc2.bias"], y)
    wrong = softmax_ce((h * other["drop"]) @ p["fc2.weight"].T + p["fc2.bias"], y)
    assert abs(want - wrong) > 1e-3
    z_eval = (h @ p["fc2.weight"].T + p["fc2.bias"]).astype(np.float32)
    np.testing.assert_allclose(t.predict(x), z_eval, rtol=1e-5, atol=1e-6)  # eval: identity
    assert t.train_step(t.to_device(x, y, mask), 1e-12) == pytest.approx(want, rel=1e-5)
    with pytest.raises(BackendError, match="shared dropout masks"):
        t.train_step(t.to_device(x, y), 0.1)  # never silently the framework's own RNG


@pytest.mark.parametrize("framework", framework_params())
def test_dropout_with_the_framework_rng(framework: str) -> None:
    spec = dropout_spec()
    cfg = TrainConfig(epochs=1, batch_size=4, dropout_rng="framework", intra_op_threads=1)
    t = trainer(framework, spec, cfg)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    losses = {t.train_step(t.to_device(x, y), 1e-12) for _ in range(3)}
    assert len(losses) == 3  # a fresh mask every step
    p = {k: v.astype(np.float64) for k, v in spec.params.items()}
    h = x @ p["fc1.weight"].T + p["fc1.bias"]
    no_drop = softmax_ce(h @ p["fc2.weight"].T + p["fc2.bias"], y)
    assert all(abs(v - no_drop) > 1e-4 for v in losses)


#: (model, zoo options) at sizes that keep the default tests fast
SMALL = {
    "resnet20": dict(input_shape=(3, 8, 8)),
    "vit_tiny": dict(input_shape=(3, 8, 8), dim=32, depth=2, heads=2),
    "lstm": dict(input_shape=(3, 8, 8), hidden=16),
}
#: networks whose smallest input is 32x32 (five poolings / stride 32): slow tests, at a learning
#: rate where batch-8 steps stay out of the chaotic regime (at lr 0.02 a ReLU mask flip, see the
#: README's training section, grows past 1e-4 by step 3; measured at lr 0.002 over 6 steps:
#: mobilenet_v2 5.3e-5 relative; vgg11_bn on these batches 8e-5 at step 2 and 2.8e-3 at step 5, so
#: it is held to 3 steps at lr 0.001: TensorFlow 1.1e-4 at step 4, a ReLU flip)
SLOW = {"vgg11_bn": (dict(), 3, 0.001), "mobilenet_v2": (dict(), 6, 0.002)}


def learnable_batches(spec, steps: int, batch: int, seed: int = 0):
    """Class templates plus noise: a task the networks learn (losses fall) in a few steps."""
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((10, *spec.input_shape)).astype(np.float32)
    ys = rng.integers(0, 10, (steps, batch))
    noise = rng.standard_normal((steps, batch, *spec.input_shape)).astype(np.float32)
    return templates[ys] + 0.5 * noise, ys


def run_steps(framework: str, spec, steps: int, config: TrainConfig = CONFIG):
    t = trainer(framework, spec, config)
    xs, ys = learnable_batches(spec, steps, config.batch_size)
    losses = []
    for s in range(steps):
        masks = dropout_masks(t.dropout, config.batch_size, config.seed, s) if t.dropout else None
        losses.append(t.train_step(t.to_device(xs[s], ys[s], masks), config.lr))
    return np.asarray(losses), t.export_params()


#: parameters after the steps, max abs difference as a fraction of the parameter's scale: 1e-3,
#: but resnet56 (56 layers, 20 full-size steps at lr 0.02: its losses agree within 1e-4 relative,
#: TensorFlow's stem.bn.bias measured 1.6e-3 of its scale from torch's, the departure growing with
#: depth as the README's training section explains)
PARAM_RTOL = {"resnet56": 2e-3}


def check_agreement(name: str, kw: dict, steps: int, lr: float = CONFIG.lr) -> None:
    spec = zoo.get(name, **kw)
    config = TrainConfig(**{**CONFIG.to_dict(), "lr": lr})
    runs = {f: run_steps(f, spec, steps, config) for f in INSTALLED}
    ref_losses, ref_params = runs[INSTALLED[0]]
    assert np.all(np.isfinite(ref_losses))
    for f in INSTALLED[1:]:
        losses, params = runs[f]
        rel = np.abs(losses - ref_losses) / np.abs(ref_losses)
        assert rel.max() < LOSS_RTOL, (f, rel)
        assert params.keys() == ref_params.keys()
        for k, v in params.items():
            scale = max(np.abs(ref_params[k]).max(), 1e-3)
            tol = PARAM_RTOL.get(name, 1e-3)
            assert np.abs(v - ref_params[k]).max() < tol * scale, (f, k)


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
@pytest.mark.parametrize("name", sorted(SMALL))
def test_zoo_network_trains_the_same_in_every_framework(name: str) -> None:
    check_agreement(name, SMALL[name], steps=4)


@pytest.mark.slow
@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
@pytest.mark.parametrize("name", sorted(SLOW))
def test_zoo_network_with_32x32_input_trains_the_same(name: str) -> None:
    kw, steps, lr = SLOW[name]
    check_agreement(name, kw, steps=steps, lr=lr)


@pytest.mark.slow
@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
@pytest.mark.parametrize("name", ["resnet20", "resnet56", "vit_tiny", "lstm"])
def test_zoo_network_full_size_20_steps(name: str) -> None:
    check_agreement(name, {}, steps=20)


def test_every_zoo_classifier_is_trainable() -> None:
    from dlbench.train import check_trainable, logits_spec

    for name in ("resnet20", "resnet56", "vgg11_bn", "mobilenet_v2", "vit_tiny", "lstm"):
        check_trainable(zoo.get(name))
        logits_spec(zoo.get(name, softmax=True))
