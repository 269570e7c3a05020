"""The trainer base class and the one copy of the update rules every framework runs."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest

from dlbench.backends.common.training import SpecTrainer, optimizer_slots, update_rule
from dlbench.errors import BackendError
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.train import TrainConfig

CASES = {
    "sgd": dict(optimizer="sgd", momentum=0.9, weight_decay=0.01),
    "nesterov": dict(optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=0.001),
    "plain": dict(optimizer="sgd", momentum=0.0),
    "adam": dict(optimizer="adam", betas=(0.8, 0.99), weight_decay=0.05, eps=1e-6),
}


def _reference(p, grads, lrs, cfg: TrainConfig) -> np.ndarray:
    """The rules of dlbench.train.config written the textbook way (bias-corrected moments)."""
    buf = m = v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = g + cfg.weight_decay * p
        if cfg.optimizer == "sgd":
            buf = cfg.momentum * buf + g
            p = p - lr * (g + cfg.momentum * buf if cfg.nesterov else buf)
        else:
            b1, b2 = cfg.betas
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + cfg.eps)
    return p


@pytest.mark.parametrize("case", list(CASES))
def test_update_rule_is_the_documented_rule(case: str) -> None:
    cfg = TrainConfig(**CASES[case])
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(4)]
    lrs = [0.1, 0.05, 0.2, 0.01]
    p = p0
    slots = tuple(np.zeros_like(p0) for _ in optimizer_slots(cfg))
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        b1, b2 = cfg.betas
        corrections = (1 - b1**t, (1 - b2**t) ** 0.5)
        p, slots = update_rule(p, g, slots, lr, cfg, corrections, np.sqrt)
    np.testing.assert_allclose(p, _reference(p0, grads, lrs, cfg), rtol=1e-12, atol=1e-14)
    assert not np.allclose(p, _reference(p0, grads, lrs[::-1], cfg))  # a wrong run is caught


def _spec():
    b = GraphBuilder("tiny", (1, 2, 2), seed=0)
    y = b.dense(b.flatten(b.input), 3, name="fc")
    return b.build([y], {"num_classes": 3})


class NumpyTrainer(SpecTrainer):
    """A minimal trainer holding (in, out) kernels: enough to exercise the base class."""

    framework = "numpy-test"
    transpose_back = True

    def build(self, device: str) -> None:
        self.store = {
            (rn.name, role): (a.T.copy() if role == "weight" else a.copy())
            for rn in self.spec.resolved()
            for role, a in rn.params.items()
        }
        self.params = self.bind_parameters()

    def locate(self, rn, role):
        key = (rn.name, role)
        if key not in self.store:
            return None
        back = (lambda a: a.T) if role == "weight" and self.transpose_back else (lambda a: a)
        return key, back

    def host(self, handle):
        return self.store[handle]

    def to_device(self, x, y):
        return x, y

    def train_step(self, batch, lr):
        self.store[("fc", "weight")] -= lr
        return 0.0

    def predict(self, x):
        return x.reshape(len(x), -1) @ self.store[("fc", "weight")] + self.store[("fc", "bias")]


def test_base_binds_checks_and_exports_in_canonical_layout() -> None:
    spec = _spec()
    t = NumpyTrainer(spec, TrainConfig())
    assert t.names == ["fc.weight", "fc.bias"] and t.params == [("fc", "weight"), ("fc", "bias")]
    t.train_step(t.to_device(None, None), 0.5)
    out = t.export_params()
    assert out["fc.weight"].shape == spec.params["fc.weight"].shape
    np.testing.assert_array_equal(out["fc.weight"], spec.params["fc.weight"] - 0.5)
    np.testing.assert_array_equal(out["fc.bias"], spec.params["fc.bias"])
    assert out["fc.weight"].flags.c_contiguous and out["fc.weight"].dtype == np.float32


def test_base_refuses_a_parameter_it_cannot_map_back() -> None:
    class Wrong(NumpyTrainer):
        transpose_back = False  # a layout without its inverse: the check must fail

    with pytest.raises(BackendError, match=r"Node 'fc': cannot find parameter 'weight'"):
        Wrong(_spec(), TrainConfig())

    class Missing(NumpyTrainer):
        def locate(self, rn, role):
            return None if role == "bias" else super().locate(rn, role)

    with pytest.raises(BackendError, match=r"'bias' \(fc.bias\) in the numpy-test model"):
        Missing(_spec(), TrainConfig())


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "jax"])
def test_every_framework_trainer_subclasses_the_base(framework: str) -> None:
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    mod = importlib.import_module(f"dlbench.backends.{framework}.training")
    t = mod.make_trainer(_spec(), TrainConfig(optimizer="adam"))
    assert isinstance(t, SpecTrainer) and t.framework == framework
    assert set(t.state) == {"t", "m", "v"}
    exported = t.export_params()
    for name in ("fc.weight", "fc.bias"):
        np.testing.assert_array_equal(exported[name], _spec().params[name])


def test_update_all_and_corrections() -> None:
    from dlbench.backends.common.training import adam_corrections, update_all

    sgd, adam = TrainConfig(optimizer="sgd"), TrainConfig(optimizer="adam", betas=(0.5, 0.75))
    assert adam_corrections(sgd, 3, pow, np.sqrt) is None
    np.testing.assert_allclose(adam_corrections(adam, 2, pow, np.sqrt), (0.75, 0.4375**0.5))
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(3), rng.standard_normal((2, 2))]
    grads = [rng.standard_normal(3), rng.standard_normal((2, 2))]
    state = {"t": 1, "m": [np.ones(3), np.ones((2, 2))], "v": [np.ones(3), np.ones((2, 2))]}
    before = [a.copy() for a in params + state["m"]]
    corr = adam_corrections(adam, 1, pow, np.sqrt)
    new_p, new_s = update_all(params, grads, state, 0.1, adam, corr, np.sqrt)
    for i in range(2):
        p, (m, v) = update_rule(
            params[i], grads[i], (state["m"][i], state["v"][i]), 0.1, adam, corr, np.sqrt
        )
        np.testing.assert_array_equal(new_p[i], p)
        np.testing.assert_array_equal(new_s["m"][i], m)
        np.testing.assert_array_equal(new_s["v"][i], v)
    for a, b in zip(before, params + state["m"]):
        np.testing.assert_array_equal(a, b)  # nothing modified in place
