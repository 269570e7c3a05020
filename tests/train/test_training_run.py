"""Real (short) training runs on digits: per-step loss agreement between frameworks, close final
accuracies, export back to a ModelSpec, refusals, the CLI and the shipped weights."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from dlbench import get_backend, zoo
from dlbench.errors import ConfigError
from dlbench.train import TrainConfig, check_trainable, export_spec, logits_spec
from dlbench.train.local import run_folds
from dlbench.train.plan import plan_folds
from dlbench.train.runner import load_data, load_spec

from .conftest import FRAMEWORKS

INSTALLED = [f for f in FRAMEWORKS if importlib.util.find_spec(f) is not None]
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05, weight_decay=5e-4, intra_op_threads=1)
#: measured: <= 1e-6 over the first 20 steps (float32); the bound leaves room for other CPUs
LOSS_TOL = 1e-4
#: Steps compared per framework. JAX 0.10 on an AMD EPYC (AVX2/FMA) departs from torch at step
#: ~10 here: conv3's weight difference jumps from 1e-7 to 1.5e-6 at step 9 and 8e-5 at step 11
#: (a discrete event in its gradient, not rounding: changing XLA's ISA or fast-math flags leaves
#: the jumps unchanged), while TensorFlow stays within 2.4e-7 of torch for all 20 steps. Finding
#: that event is a ReLU mask flip (README, training section: kernels sum in different orders, a
#: pre-activation within rounding of zero passes the gradient in one framework only); not a
#: dlbench bug, so JAX stays held to the steps before it.
STEPS = {"tensorflow": 20, "jax": 9}
#: final test accuracy within this of torch's after 2 epochs (JAX: 2 points, since it departs
#: after step 9; 1.1 points measured here, 2 of 180 test samples)
ACC_TOL = {"tensorflow": 0.01, "jax": 0.02}


@pytest.fixture(scope="module")
def runs():
    data, _ = load_data("digits")
    spec = load_spec("digits_cnn", (1, 8, 8), 10, 0)
    folds = plan_folds(data["y_train"], CONFIG)
    out = {f: run_folds(f, spec, CONFIG, folds, data, 10)[0] for f in INSTALLED}
    return spec, data, out


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two of torch, tensorflow, jax")
def test_frameworks_agree_step_by_step(runs) -> None:
    _, _, out = runs
    ref_name = INSTALLED[0]
    ref = np.asarray(out[ref_name][0]["step_losses"])
    assert len(ref) == 2 * (1293 // 32)  # 90% of the 1,437 train samples, drop_last
    for f in INSTALLED[1:]:
        got = np.asarray(out[f][0]["step_losses"])
        assert got.shape == ref.shape
        n = STEPS.get(f, 20) if ref_name == "torch" else 9
        assert np.abs(got[:n] - ref[:n]).max() < LOSS_TOL, f
        acc_ref = out[ref_name][0]["final"]["test_accuracy"]
        assert abs(out[f][0]["final"]["test_accuracy"] - acc_ref) <= ACC_TOL.get(f, 0.01), f


@pytest.mark.skipif(not INSTALLED, reason="needs torch, tensorflow or jax")
def test_record_and_export(runs) -> None:
    spec, data, out = runs
    for f, (rec, params) in out.items():
        assert rec["steps"] == len(rec["step_times_s"]) == len(rec["step_losses"])
        assert rec["step_time"]["n"] == rec["steps"] - CONFIG.warmup_steps
        assert rec["samples_per_s"] > 0 and len(rec["curves"]["val_accuracy"]) == 2
        assert rec["final"]["test_accuracy"] > 0.7 and rec["diagnosis"]["label"]
        assert rec["step_losses"][-1] < rec["step_losses"][0]
        trained = export_spec(spec, params)
        assert trained.fingerprint() != spec.fingerprint()
        numpy_model = get_backend("numpy").build(trained)
        acc = (numpy_model.predict(data["x_test"]).argmax(1) == data["y_test"]).mean()
        assert acc == pytest.approx(rec["final"]["test_accuracy"], abs=1e-9), f


def test_refuses_a_model_with_two_outputs() -> None:
    spec = zoo.get("mlp")
    two = spec.copy()
    two.outputs = [*spec.outputs, spec.nodes[0].name]
    two._invalidate()
    with pytest.raises(ConfigError, match="one output"):
        check_trainable(two)


def test_final_softmax_is_dropped_for_training_and_kept_on_export() -> None:
    spec = zoo.get("mlp", softmax=True)
    lg = logits_spec(spec)
    assert spec.nodes[-1].op == "softmax" and lg.nodes[-1].op == "dense"
    assert lg.outputs == ["head"]
    back = export_spec(spec, {"head.bias": np.zeros(10, np.float32)})
    assert back.nodes[-1].op == "softmax" and np.all(back.params["head.bias"] == 0)


def test_digits_cnn_shipped_weights() -> None:
    spec = zoo.get("digits_cnn")
    assert spec.metadata["pretrained"] is True
    assert spec.metadata["trained"]["dataset"] == "digits"
    assert zoo.get("digits_cnn", pretrained=False) != spec
    with pytest.raises(ConfigError, match="pretrained=False"):
        zoo.get("digits_cnn", num_classes=5, pretrained=True)
    assert zoo.get("digits_cnn", num_classes=5).metadata["pretrained"] is False
    from dlbench import datasets

    x, y = datasets.load("digits", split="test").arrays()
    acc = (get_backend("numpy").build(spec).predict(x).argmax(1) == y).mean()
    assert acc > 0.95


@pytest.mark.skipif("jax" not in INSTALLED, reason="jax is not installed")
def test_cli_train_writes_result_and_weights(run_cli, tmp_path) -> None:
    out, weights = tmp_path / "t.json", tmp_path / "w"
    proc = run_cli(
        "train",
        "--backends",
        "jax",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--folds",
        "2",
        "--out",
        str(out),
        "--save-weights",
        str(weights),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "dlbench.train-result" and doc["status"] == "complete"
    info = doc["backends"]["jax"]
    assert info["status"] == "ok" and len(info["runs"]) == 2
    accs = [r["final"]["test_accuracy"] for r in info["runs"]]
    summary = info["summary"]["test_accuracy"]
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(np.mean(accs), abs=1e-12)
    assert summary["std"] == pytest.approx(np.std(accs, ddof=1), abs=1e-12)
    assert "±" in proc.stdout and "diagnosis" in proc.stdout
    from dlbench.model.spec import ModelSpec

    trained = ModelSpec.load(weights / "digits_cnn-jax-fold0.json")
    assert trained.metadata["trained"]["framework"] == "jax"


def test_cli_train_usage_error(run_cli) -> None:
    proc = run_cli("train", "--optimizer", "rmsprop", "--backends", "jax")
    assert proc.returncode == 2
    assert (
        "Expected `optimizer` in ('sgd', 'adam', 'adamw'). Received: optimizer='rmsprop'"
        in proc.stderr
    )
    proc = run_cli("train", "--backends", "onnxruntime")
    assert proc.returncode == 2 and "training implementation" in proc.stderr
