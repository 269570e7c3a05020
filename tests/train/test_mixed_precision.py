"""Mixed-precision training (``TrainConfig.precision``) in torch, TensorFlow and JAX.

* bfloat16 / float16 training stays close to float32 for 10 steps in each framework, and the
  frameworks agree with each other (tolerances below, with their justification);
* the precision really in force is checked from what ran (torch: the dtypes dispatched after
  autocast; TensorFlow: the traced step's graph; JAX: the step's jaxpr), and a float32 step
  claiming bfloat16 is refused;
* float16's dynamic loss scaling: an overflowing step (a huge loss scale, or an input that makes
  the gradients inf) is skipped and the scale halves, growth after the interval, the same scale
  history in every framework; the shared rule against ``torch._amp_update_scale_``;
* bad input gets a clear error; the recorded precision meets the train-result schema.

Tolerances (absolute, on losses near 2.3 falling towards 0, 10 SGD steps at lr 0.05):

* bfloat16 vs the same framework's float32: ``BF16_TOL = 2e-2``. bfloat16 keeps 8 significant
  bits: one rounding of a loss near 2.3 is up to 2.3 * 2**-8 = 9e-3, and every matrix product's
  output is rounded so. Measured (loaded machine): max 1.3e-3 (torch), 2.0e-3 (JAX), 8.7e-3
  (TensorFlow, whose CPU bfloat16 MatMul measured twice the error of a float32-accumulated
  product rounded once: 0.46 vs 0.24 max on a 16x512x128 product; torch and JAX are equal).
* float16 vs float32: ``FP16_TOL = 2e-3`` (11 significant bits: one rounding of 2.3 is 1.1e-3;
  measured max 1.8e-4).
* framework vs framework in the same reduced precision: twice the above (each framework is
  within the tolerance of its float32 run, and the float32 runs agree to ~4e-7, so by the
  triangle inequality two frameworks are within twice it). Measured bfloat16 max 1.0e-2
  (TensorFlow vs torch), float16 1.0e-4.

A reduced-precision run must also *differ* from float32 by more than float32's own rounding
(float32 runs of the three frameworks agree to 4e-7): a silent float32 run fails that.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dlbench import zoo
from dlbench.errors import BackendError, ConfigError
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.train import TrainConfig

from .conftest import FRAMEWORKS, framework_params

INSTALLED = [f for f in FRAMEWORKS if importlib.util.find_spec(f) is not None]
STEPS, BATCH, LR = 10, 16, 0.05
BF16_TOL, FP16_TOL = 2e-2, 2e-3
#: a reduced-precision run's losses differ from float32's by more than this somewhere
MIN_DIFF = {"bfloat16": 1e-4, "float16": 5e-6}
TOL = {"bfloat16": BF16_TOL, "float16": FP16_TOL}


def config(precision: str = "float32", **kw) -> TrainConfig:
    return TrainConfig(
        epochs=1, batch_size=BATCH, lr=LR, intra_op_threads=1, precision=precision, **kw
    )


def make(framework: str, spec, cfg: TrainConfig):
    return importlib.import_module(f"dlbench.backends.{framework}.training").make_trainer(spec, cfg)


def bn_cnn():
    """Two conv-BN-ReLU blocks and a dense head: the batch-norm model."""
    b = GraphBuilder("bn_cnn", (3, 8, 8), seed=0)
    x = b.act(b.bn(b.conv(b.input, 8, 3, padding=1, name="conv1"), name="bn1"), "relu", name="r1")
    x = b.act(b.bn(b.conv(x, 8, 3, padding=1, name="conv2"), name="bn2"), "relu", name="r2")
    return b.build([b.dense(b.flatten(x), 10, name="head")], {"num_classes": 10})


MODELS = {"mlp": lambda: zoo.get("mlp"), "bn_cnn": bn_cnn}
#: precisions run per model by default (float16 on the mlp; lenet5 in the slow set)
PRECISIONS = {"mlp": ("float32", "bfloat16", "float16"), "bn_cnn": ("float32", "bfloat16")}


def batches(spec, steps: int, batch: int, seed: int = 0):
    """Class templates plus noise: the losses fall over the steps."""
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((10, *spec.input_shape)).astype(np.float32)
    ys = rng.integers(0, 10, (steps, batch))
    noise = rng.standard_normal((steps, batch, *spec.input_shape)).astype(np.float32)
    return templates[ys] + 0.5 * noise, ys


def train(framework: str, spec, cfg: TrainConfig, steps: int = STEPS):
    t = make(framework, spec, cfg)
    xs, ys = batches(spec, steps, cfg.batch_size)
    losses = [t.train_step(t.to_device(xs[s], ys[s]), cfg.lr) for s in range(steps)]
    return np.asarray(losses), t


@pytest.fixture(scope="module")
def runs():
    """(model, framework, precision) -> (losses, trainer), computed once."""
    out = {}
    for name, build in MODELS.items():
        spec = build()
        for f in INSTALLED:
            for p in PRECISIONS[name]:
                out[name, f, p] = train(f, spec, config(p))
    return out


# -- configuration ---------------------------------------------------------------------------


def test_unknown_precision_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"Expected `precision` in .*Received: precision='fp16'"):
        TrainConfig(precision="fp16")
    for field, bad in (
        ("loss_scale", 0.0),
        ("loss_scale_growth_factor", 0.5),
        ("loss_scale_backoff_factor", 1.0),
        ("loss_scale_growth_interval", 0),
    ):
        with pytest.raises(ConfigError, match=f"Expected `{field}`"):
            TrainConfig(**{field: bad})
    assert TrainConfig().precision == "float32"
    assert TrainConfig(precision="float16").loss_scale == 2.0**16  # GradScaler's init_scale


def test_cli_passes_precision_into_the_config() -> None:
    from dlbench.cli import build_parser

    args = build_parser().parse_args(["train", "--precision", "bfloat16"])
    assert args.precision == "bfloat16"
    assert TrainConfig.from_dict({"precision": args.precision}).precision == "bfloat16"


# -- bfloat16 / float16 against float32 -------------------------------------------------------


@pytest.mark.parametrize("framework", framework_params())
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reduced_precision_stays_close_to_float32(runs, framework: str, name: str) -> None:
    ref, _ = runs[name, framework, "float32"]
    assert np.all(np.isfinite(ref)) and ref[-1] < ref[0]  # it trains
    for p in PRECISIONS[name][1:]:
        losses, _ = runs[name, framework, p]
        diff = np.abs(losses - ref)
        assert diff.max() < TOL[p], (p, diff)
        assert diff.max() > MIN_DIFF[p], (p, "no rounding: a float32 run?", diff)


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_frameworks_agree_in_reduced_precision(runs, name: str) -> None:
    for p in PRECISIONS[name][1:]:
        ref, _ = runs[name, INSTALLED[0], p]
        for f in INSTALLED[1:]:
            losses, _ = runs[name, f, p]
            assert np.abs(losses - ref).max() < 2 * TOL[p], (p, f, losses - ref)


@pytest.mark.parametrize("framework", framework_params())
def test_the_dtype_in_force_is_observed_and_recorded(runs, framework: str) -> None:
    from dlbench.train.local import _checked_precision

    for name in MODELS:
        for p in PRECISIONS[name]:
            _, t = runs[name, framework, p]
            info = t.precision_info()
            assert info["requested"] == p and info["param_dtype"] == "float32"
            assert set(info["observed_compute_dtypes"]) == {p}, info
            assert _checked_precision(framework, t.config, info) is info
            assert (info["loss_scale"] is not None) == (p == "float16")
            if p != "float32":
                assert any("batch-norm" in k for k in info["float32_kept"])
    # a float32 step claiming bfloat16 is refused
    _, t32 = runs["mlp", framework, "float32"]
    with pytest.raises(BackendError, match="compute in bfloat16.*ran in \\{'float32'"):
        _checked_precision(framework, config("bfloat16"), t32.precision_info())


def test_check_observed_rules() -> None:
    from dlbench.backends.common.mixed_precision import check_observed

    bf16 = config("bfloat16")
    assert check_observed("f", bf16, {"bfloat16": 4}) is None
    assert "1 of 5" in check_observed("f", bf16, {"bfloat16": 4, "float32": 1})  # partial: warned
    with pytest.raises(BackendError, match="Received: its matrix products"):
        check_observed("f", bf16, {"float32": 5})
    with pytest.raises(BackendError, match="compute in float32"):
        check_observed("f", config(), {"bfloat16": 5})  # float32 asked, bfloat16 ran
    assert check_observed("f", config(), {}) is None  # nothing to check
    assert "could not be checked" in check_observed("f", bf16, {})


def test_torch_autocast_switched_off_is_caught() -> None:
    pytest.importorskip("torch")
    from dlbench.train.local import _checked_precision

    spec = zoo.get("mlp")
    t = make("torch", spec, config("bfloat16"))
    t.amp_dtype = None  # a silent float32 step under a bfloat16 claim
    xs, ys = batches(spec, 1, BATCH)
    t.train_step(t.to_device(xs[0], ys[0]), LR)
    with pytest.raises(BackendError, match="compute in bfloat16"):
        _checked_precision("torch", t.config, t.precision_info())


def test_trainer_precision_refuses_a_claim_not_in_force(runs) -> None:
    from dlbench.train.local import trainer_precision

    f = INSTALLED[0]
    _, t32 = runs["mlp", f, "float32"]
    assert trainer_precision(f, t32, t32.config)["observed_compute_dtypes"] == {"float32": 8}
    t32.config = config("bfloat16")  # the record would claim bfloat16
    try:
        with pytest.raises(BackendError, match="compute in bfloat16"):
            trainer_precision(f, t32, t32.config)
    finally:
        t32.config = config("float32")


def test_a_precision_the_device_cannot_run_is_refused(monkeypatch) -> None:
    """torch: autocast left disabled (as torch does, with a warning, for a dtype a device
    lacks); TensorFlow: a kernel missing for the compute dtype."""
    spec = zoo.get("mlp")
    if importlib.util.find_spec("torch") is not None:
        import torch

        monkeypatch.setattr(torch, "is_autocast_enabled", lambda *a: False)
        with pytest.raises(BackendError, match="Expected a precision torch can autocast to"):
            make("torch", spec, config("bfloat16"))
        monkeypatch.undo()
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        from dlbench.backends.tensorflow.training import TensorFlowTrainer

        def no_kernel(self, x):
            raise tf.errors.NotFoundError(None, None, "No registered 'MatMul' kernel for bfloat16")

        monkeypatch.setattr(TensorFlowTrainer, "predict", no_kernel)
        with pytest.raises(BackendError, match="TensorFlow can run.*No registered 'MatMul'"):
            make("tensorflow", spec, config("bfloat16"))


def test_torch_lstm_in_bfloat16_trains_or_is_refused_clearly() -> None:
    """oneDNN's LSTM has no bfloat16 kernel on CPUs without bfloat16 support: torch's own
    autocast then fails inside the LSTM; dlbench refuses at build, saying so."""
    pytest.importorskip("torch")
    spec = zoo.get("lstm", input_shape=(3, 8, 8), hidden=16)
    try:
        t = make("torch", spec, config("bfloat16"))
    except BackendError as exc:
        assert "Expected a precision torch can run on cpu" in str(exc)
        assert "LSTM" in str(exc)
        return
    xs, ys = batches(spec, 1, BATCH)
    t.train_step(t.to_device(xs[0], ys[0]), LR)
    assert set(t.precision_info()["observed_compute_dtypes"]) == {"bfloat16"}


def test_precision_record_meets_the_schema(runs) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = Path(__file__).parents[2] / "dlbench/execution/schema/train-result-v1.json"
    schema = json.loads(path.read_text())
    sub = {"$defs": schema["$defs"], "$ref": "#/$defs/precision"}
    for _, t in runs.values():
        jsonschema.validate(t.precision_info(), sub)
    bad = dict(runs["mlp", INSTALLED[0], "float32"][1].precision_info(), requested="fp8")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, sub)


# -- float16 dynamic loss scaling ------------------------------------------------------------


def snapshot(t) -> dict[str, np.ndarray]:
    return t.export_params()


def unchanged(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def scale_runs():
    """Per framework: the loss scale and "params unchanged" after each of five steps (scale 8,
    growth every 2 finite steps, the third step's input holding an inf), and one step at a
    loss scale of 2**100 (the float16 backward overflows)."""
    spec = zoo.get("mlp")
    xs, ys = batches(spec, 5, BATCH)
    xs[2, 0, 0, 0, 0] = np.inf
    out = {}
    for f in INSTALLED:
        t = make(f, spec, config("float16", loss_scale=8.0, loss_scale_growth_interval=2))
        scales, frozen = [], []
        for s in range(5):
            before = snapshot(t)
            t.train_step(t.to_device(xs[s], ys[s]), LR)
            scales.append(t.loss_scale())
            frozen.append(unchanged(before, snapshot(t)))
        rec = t.precision_info()["loss_scale"]
        huge = make(f, spec, config("float16", loss_scale=2.0**100))
        before = snapshot(huge)
        loss = huge.train_step(huge.to_device(xs[0], ys[0]), LR)
        out[f] = dict(
            scales=scales,
            frozen=frozen,
            record=rec,
            huge=(huge.loss_scale(), huge.skipped_steps, unchanged(before, snapshot(huge)), loss),
        )
    return out


@pytest.mark.parametrize("framework", framework_params())
def test_float16_skips_a_non_finite_step_and_backs_off(scale_runs, framework: str) -> None:
    r = scale_runs[framework]
    # steps 1-2 finite (grow to 16 after 2), step 3 inf (skipped, 8), steps 4-5 (grow to 16)
    assert r["scales"] == [8.0, 16.0, 8.0, 8.0, 16.0]
    assert r["frozen"] == [False, False, True, False, False]
    assert r["record"]["skipped_steps"] == 1 and r["record"]["final"] == 16.0
    scale, skipped, frozen, loss = r["huge"]
    assert (scale, skipped, frozen) == (2.0**99, 1, True)
    assert np.isfinite(loss)  # the loss itself (float32) is fine: the float16 backward overflowed


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
def test_loss_scale_history_is_identical_in_every_framework(scale_runs) -> None:
    ref = scale_runs[INSTALLED[0]]
    for f in INSTALLED[1:]:
        assert scale_runs[f]["scales"] == ref["scales"]
        assert scale_runs[f]["frozen"] == ref["frozen"]
        assert scale_runs[f]["huge"][:3] == ref["huge"][:3]


def test_shared_loss_scale_rule_matches_torch_gradscaler() -> None:
    torch = pytest.importorskip("torch")
    from dlbench.backends.common.mixed_precision import update_loss_scale

    cfg = config("float16", loss_scale=2.0**10, loss_scale_growth_interval=3)
    rng = np.random.default_rng(0)
    flags = rng.random(60) < 0.8
    scale_t = torch.full((1,), cfg.loss_scale)
    tracker = torch.zeros((1,), dtype=torch.int32)
    scale, good = np.float32(cfg.loss_scale), np.int32(0)
    for ok in flags:
        torch._amp_update_scale_(
            scale_t,
            tracker,
            torch.tensor([0.0 if ok else 1.0]),
            cfg.loss_scale_growth_factor,
            cfg.loss_scale_backoff_factor,
            cfg.loss_scale_growth_interval,
        )
        scale, good = update_loss_scale(scale, good, np.bool_(ok), cfg, np.where)
        assert float(scale) == float(scale_t) and int(good) == int(tracker)
    # the comparison can fail: a rule growing one step late departs from torch's
    late = config("float16", loss_scale=2.0**10, loss_scale_growth_interval=4)
    scale_t = torch.full((1,), cfg.loss_scale)
    tracker = torch.zeros((1,), dtype=torch.int32)
    scale, good, seen = np.float32(cfg.loss_scale), np.int32(0), []
    for ok in flags:
        torch._amp_update_scale_(scale_t, tracker, torch.tensor([0.0 if ok else 1.0]), 2.0, 0.5, 3)
        scale, good = update_loss_scale(scale, good, np.bool_(ok), late, np.where)
        seen.append(float(scale) == float(scale_t))
    assert not all(seen)


# -- slow: lenet5 and the CLI ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
def test_lenet5_bf16_and_fp16_close_to_float32_and_across_frameworks() -> None:
    spec = zoo.get("lenet5", input_shape=(1, 28, 28))
    losses = {
        (f, p): train(f, spec, config(p))[0] for f in INSTALLED for p in TOL.keys() | {"float32"}
    }
    for p, tol in TOL.items():
        for f in INSTALLED:
            assert np.abs(losses[f, p] - losses[f, "float32"]).max() < tol
            assert np.abs(losses[f, p] - losses[INSTALLED[0], p]).max() < 2 * tol
