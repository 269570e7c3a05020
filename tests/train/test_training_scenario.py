"""``dlbench run --scenario training``: the training scenario, its agreement check, the result
schema, the summary table and ``compare`` on training cells.

The framework-free tests build documents by hand; the in-process tests train digits_cnn for a
few steps with the real trainers (skipped when the framework is absent); the end-to-end runs
(workers, the CLI, resnet20 in three frameworks) are slow-marked.
"""

from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest

from dlbench.errors import ConfigError
from dlbench.execution.config import BenchmarkConfig
from dlbench.execution.scenarios.training import (
    TrainingContext,
    cannot_train,
    plan_cell,
    precision_unsupported,
    train_config,
    training_agreement,
)

HAS = {f: importlib.util.find_spec(f) is not None for f in ("torch", "tensorflow", "jax")}


# -- configuration -----------------------------------------------------------------------------
def test_config_fields_and_cells() -> None:
    cfg = BenchmarkConfig(
        scenarios=["training"],
        backends=["torch", "numpy"],
        batch_sizes=[8, 16],
        train_steps=7,
        train_options={"lr": 0.01},
    )
    assert [c.id for c in cfg.cells()] == [
        "torch/cpu/training/bs8",
        "torch/cpu/training/bs16",
        "numpy/cpu/training/bs8",
        "numpy/cpu/training/bs16",
    ]
    opts = cfg.scenario_options("training")
    assert (opts.train_steps, opts.epochs, opts.train_options) == (7, None, {"lr": 0.01})
    tc, steps = train_config(opts, 16, "float32", 1, 1)
    assert (tc.batch_size, tc.lr, tc.folds, steps) == (16, 0.01, 1, 7)
    opts = BenchmarkConfig(scenarios=["training"]).scenario_options("training")
    assert train_config(opts, 8, "float32", 1, 1)[1] == 50  # the default step count


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"scenarios": ["latency"], "train_steps": 5}, "Expected the training scenario"),
        ({"train_steps": 5, "train_epochs": 1}, "Expected `train_steps` or `epochs`, not both"),
        ({"train_steps": 0}, "Expected `train_steps` to be an int >= 1"),
        ({"target_accuracy": 1.5}, "Expected `target_accuracy` in (0, 1]"),
        ({"train_options": {"nope": 1}}, "nope"),
        ({"train_options": {"batch_size": 4}}, "without the fields the run sets itself"),
        ({"train_options": {"optimizer": "rmsprop"}}, "Expected `optimizer` in"),
        ({"train_options": {"warmup_epochs": 1.0}}, "Expected `epochs` for a warm-up"),
    ],
)
def test_config_refuses_bad_training_fields(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BenchmarkConfig(**{"scenarios": ["training"], **fields})


def test_backends_that_cannot_train_and_precisions() -> None:
    assert cannot_train("torch") is None
    for name in ("onnxruntime", "numpy"):
        assert "has no training implementation" in cannot_train(name)
    assert "via-ONNX" in cannot_train("torch>onnxruntime")
    assert precision_unsupported("float32") is None
    assert "not defined" in precision_unsupported("int8")
    assert precision_unsupported("bfloat16") is None  # TrainConfig.precision (mixed precision)


# -- the plan ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_data():
    from dlbench.train.runner import load_data

    return load_data("digits")


def test_plan_of_a_step_count(digits_data) -> None:
    data, _ = digits_data
    opts = BenchmarkConfig(scenarios=["training"]).scenario_options("training")
    config, _ = train_config(opts, 16, "float32", 1, 1)
    fit_cfg, fd, orders, lrs, fp = plan_cell(data, config, 7, eval_limit=100)
    assert fit_cfg.epochs == 1 and orders.shape == (1, 7 * 16) and len(lrs) == 7
    assert len(fd["x_train"]) == len(np.unique(orders)) <= 7 * 16  # only the samples drawn
    assert len(fd["y_test"]) == 100 and len(fd["y_val"]) <= 100
    # the same plan from the same seed (each worker computes it), another from another seed
    assert plan_cell(data, config, 7, eval_limit=100)[4] == fp
    other, _ = train_config(
        BenchmarkConfig(scenarios=["training"], seed=1).scenario_options("training"),
        16,
        "float32",
        1,
        1,
    )
    assert plan_cell(data, other, 7, eval_limit=100)[4] != fp
    # more steps than one epoch holds: epochs are concatenated, every sample index valid
    n_epoch = len(fd["y_train"])
    _, fd2, orders2, lrs2, _ = plan_cell(data, config, 120, eval_limit=None)
    assert orders2.shape == (1, 120 * 16) and len(lrs2) == 120
    assert orders2.max() < len(fd2["x_train"]) and n_epoch <= len(fd2["x_train"])


# -- agreement ---------------------------------------------------------------------------------
def _cell(backend: str, losses: list[float], *, fp: str = "abc", bs: int = 8, precision=None):
    cell = {
        "id": f"{backend}/cpu/training/bs{bs}",
        "backend": backend,
        "device": "cpu",
        "scenario": "training",
        "batch_size": bs,
        "status": "ok",
        "error": None,
        "validity": {"valid": True, "reasons": [], "notes": []},
        "training": {"step_losses": list(losses), "plan_fingerprint": fp},
    }
    if precision:
        cell["precision"] = precision
        cell["id"] += f"/{precision}"
    return cell


LOSSES = [2.30, 2.21, 2.05, 1.93, 1.80, 1.71, 1.62, 1.55]


def test_agreement_passes_close_losses_and_catches_wrong_ones() -> None:
    doc = {
        "cells": [
            _cell("jax", np.add(LOSSES, 2e-7).tolist()),
            _cell("torch", LOSSES),  # the reference although not first
            _cell("tensorflow", LOSSES[::-1]),  # a wrong loss curve
            _cell("mine", LOSSES, fp="other"),  # trained on another plan
        ]
    }
    summary = training_agreement(doc)
    cells = {c["backend"]: c for c in doc["cells"]}
    (group,) = summary["groups"]
    assert group["reference"] == "torch" and group["tolerance"] == 1e-3
    assert cells["jax"]["status"] == "ok" and cells["jax"]["training"]["agreement"]["ok"]
    assert cells["jax"]["training"]["agreement"]["max_abs_loss_diff"] == pytest.approx(2e-7)
    assert cells["torch"]["training"]["agreement"]["is_reference"]
    tf = cells["tensorflow"]
    assert tf["status"] == "invalid" and not tf["validity"]["valid"]
    assert tf["training"]["agreement"]["first_step_over"] == 0
    assert "step-loss agreement failed" in tf["validity"]["reasons"][0]
    assert cells["mine"]["status"] == "invalid"
    assert "another plan" in cells["mine"]["validity"]["reasons"][0]
    assert len(summary["disagreements"]) == 2
    assert all("TRAINING LOSSES DISAGREE" in m for m in summary["disagreements"])


def test_agreement_catches_a_small_late_departure_and_groups_by_batch_and_precision() -> None:
    late = list(LOSSES)
    late[6] += 2e-3  # one step off by twice the tolerance
    doc = {
        "cells": [
            _cell("torch", LOSSES),
            _cell("jax", late),
            _cell("torch", LOSSES, bs=16),
            _cell("jax", np.add(LOSSES, 0.01).tolist(), precision="bfloat16"),  # alone: no ref
        ]
    }
    summary = training_agreement(doc)
    assert len(summary["groups"]) == 3
    jax = doc["cells"][1]
    assert jax["status"] == "invalid" and jax["training"]["agreement"]["first_step_over"] == 6
    assert doc["cells"][3]["status"] == "ok"  # its own group, its own reference
    # only the first `steps` are compared
    doc2 = {"cells": [_cell("torch", LOSSES), _cell("jax", late)]}
    assert training_agreement(doc2, steps=6)["disagreements"] == []


def test_a_reduced_precision_is_held_to_its_own_tolerance() -> None:
    """bfloat16 cells: a rounding-size gap (8e-3, TF's measured bf16 departure on digits) passes
    at bfloat16 and would not at float32; a wrong curve is still caught at bfloat16."""
    from dlbench.train.runner import LOSS_TOLERANCES

    near = np.add(LOSSES, 8e-3).tolist()
    doc = {
        "cells": [
            _cell("torch", LOSSES, precision="bfloat16"),
            _cell("tensorflow", near, precision="bfloat16"),
            _cell("jax", LOSSES[::-1], precision="bfloat16"),  # a wrong loss curve
            _cell("torch", LOSSES),
            _cell("tensorflow", near),  # the same gap at float32: over its 1e-3
        ]
    }
    summary = training_agreement(doc)
    tol = {g["precision"]: g["tolerance"] for g in summary["groups"]}
    assert tol == {"bfloat16": LOSS_TOLERANCES["bfloat16"], "float32": LOSS_TOLERANCES["float32"]}
    status = [c["status"] for c in doc["cells"]]
    assert status == ["ok", "ok", "invalid", "ok", "invalid"], status


def test_a_diverged_reference_is_not_used() -> None:
    doc = {"cells": [_cell("torch", [2.3, float("nan")]), _cell("jax", [2.3, 2.2])]}
    summary = training_agreement(doc)
    assert summary["groups"][0]["reference"] == "jax"


# -- documents: schema, table, compare -----------------------------------------------------------
def _timing(samples: list[float], bs: int = 8) -> dict:
    from dlbench.analysis.stats import summarize

    return {
        "mode": "train_step",
        "batch_size": bs,
        "n": len(samples),
        "wall_time_s": float(sum(samples)),
        "throughput": bs * len(samples) / float(sum(samples)),
        "first_call_s": 0.5,
        "stats": summarize(samples),
        "samples_s": list(samples),
    }


def _doc(times: dict[str, float], losses: dict[str, list[float]]) -> dict:
    from dlbench.execution import environment
    from dlbench.execution import results as res

    cfg = BenchmarkConfig(scenarios=["training"], backends=list(times), train_steps=8)
    doc = res.new_document(cfg.to_dict(), environment.capture())
    doc["model"] = {"name": "m", "fingerprint": "f", "training_start": "seeded"}
    doc["dataset"] = {"name": "digits", "split": "test"}
    rng = np.random.default_rng(0)
    for b, t in times.items():
        cell = _cell(b, losses[b])
        cell["training"].update(
            steps=8,
            step_times_s=[0.5, *([t] * 7)],
            warmup_steps=5,
            first_step_s=0.5,
            final={"train_loss": 1.5, "train_accuracy": 0.5},
            precision="float32",
            config={},
        )
        cell["timing"] = _timing((t * (1 + 0.01 * rng.standard_normal(200))).tolist())
        cell["metrics"] = {"final_loss": losses[b][-1], "train_accuracy": 0.5}
        cell["memory"] = {"peak_rss_bytes": 100 * 2**20}
        doc["cells"].append(cell)
    doc["training"] = training_agreement(doc)
    return doc


def test_schema_accepts_training_cells_and_refuses_broken_ones() -> None:
    from dlbench.execution import results as res

    doc = _doc({"torch": 0.01, "jax": 0.02}, {"torch": LOSSES, "jax": LOSSES})
    res.check_document(json.loads(json.dumps(doc)))
    bad = copy.deepcopy(doc)
    del bad["cells"][0]["training"]
    with pytest.raises(ConfigError, match="/cells/0/training"):
        res.check_document(bad)
    bad = copy.deepcopy(doc)
    bad["cells"][1]["training"]["step_losses"][0] = "high"
    with pytest.raises(ConfigError, match="step_losses/0"):
        res.check_document(bad)
    bad = copy.deepcopy(doc)
    bad["cells"][0]["timing"]["mode"] = "train"
    with pytest.raises(ConfigError, match="timing/mode"):
        res.check_document(bad)


def test_summary_table_and_winner_lines() -> None:
    from dlbench.report.table import summary_rows, winner_sentences
    from dlbench.report.training import agreement_lines

    doc = _doc(
        {"torch": 0.010, "jax": 0.020, "tensorflow": 0.005},
        {"torch": LOSSES, "jax": LOSSES, "tensorflow": LOSSES[::-1]},
    )
    rows = {r["backend"]: r for r in summary_rows(doc)}
    assert rows["torch"]["train_step_median"] == pytest.approx(0.010, rel=0.01)
    assert rows["jax"]["train_throughput"] == pytest.approx(8 / 0.020, rel=0.01)
    assert rows["torch"]["train_final_loss"] == LOSSES[-1]
    assert rows["tensorflow"]["train_step_median_invalid"]  # disagreeing: never the winner
    text = " ".join(winner_sentences(list(rows.values())))
    assert "Lowest step time (p50): torch" in text and "2.00x better than jax" in text
    assert "INVALID, left out: tensorflow" in text
    lines = agreement_lines(doc)
    assert "jax 0.0e+00 ok" in lines[0] and "tensorflow" in lines[0] and "DISAGREES" in lines[0]


def test_compare_gates_step_time_and_notes_loss_changes() -> None:
    from dlbench.analysis.compare import UnfairComparisonError, compare

    a = _doc({"torch": 0.010}, {"torch": LOSSES})
    b = _doc({"torch": 0.013}, {"torch": np.add(LOSSES, 0.1).tolist()})
    result = compare(a, b)
    (change,) = result.changes
    assert change.scenario == "training" and change.verdict == "regression"
    assert change.ratio == pytest.approx(1.3, rel=0.02)
    assert any("final loss changed" in n for n in change.notes)
    assert change.metrics["final_loss"]["delta"] == pytest.approx(0.1)
    same = compare(a, _doc({"torch": 0.010}, {"torch": np.add(LOSSES, 0.1).tolist()}))
    assert same.changes[0].verdict in ("unchanged", "within threshold")  # a loss is no verdict
    other = copy.deepcopy(b)
    other["config"]["train_steps"] = 20
    with pytest.raises(UnfairComparisonError, match="train_steps: 8 vs 20"):
        compare(a, other)
    other = copy.deepcopy(b)
    other["model"]["training_start"] = "the file's weights"
    with pytest.raises(UnfairComparisonError, match="training starts from"):
        compare(a, other)


def test_html_section_and_figures(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from dlbench.report import write_report

    doc = _doc({"torch": 0.01, "jax": 0.02}, {"torch": LOSSES, "jax": LOSSES})
    for c in doc["cells"]:
        c["training"]["curves"] = {"train_loss": [1.5], "train_accuracy": [0.5]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    files = write_report(path, tmp_path / "rep")
    html = files.html.read_text()
    assert "<h2>Training</h2>" in html and "torch/cpu/training/bs8" in html
    assert "training_steps" in files.figures and "training_learning_curves" in files.figures


# -- real training, in this process --------------------------------------------------------------
def _train(framework: str, steps: int | None = 8, epochs=None, target=None, **train_options):
    from dlbench import datasets, zoo
    from dlbench.execution.scenarios import run_scenario
    from dlbench.model.backend import get_backend

    spec = zoo.get("digits_cnn", pretrained=False)
    model = get_backend(framework, intra_op_threads=1).build(spec, "cpu")
    ctx = TrainingContext(spec=spec, dataset="digits")
    rec = run_scenario(
        "training",
        model,
        datasets.load("digits"),
        batch_size=16,
        train_steps=steps,
        epochs=epochs,
        target_accuracy=target,
        train_options=train_options,
        context=ctx,
    )
    return spec, rec


@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_torch_cell_record_against_an_independent_first_loss(digits_data) -> None:
    from dlbench.model.backend import get_backend
    from dlbench.train.loop import loss_and_accuracy

    spec, rec = _train("torch")
    t, timing = rec["training"], rec["timing"]
    assert t["steps"] == 8 and len(t["step_losses"]) == 8 and t["warmup_steps"] == 5
    assert timing["mode"] == "train_step" and timing["n"] == 3 and len(timing["samples_s"]) == 3
    assert timing["throughput"] == pytest.approx(16 * 3 / sum(timing["samples_s"]))
    assert rec["metrics"]["final_loss"] == t["step_losses"][-1]
    assert rec["validity"]["valid"], rec["validity"]
    # step 0's loss is the initial weights' loss on the plan's first batch: the float64
    # NumPy reference's logits give it independently of any trainer
    data, _ = digits_data
    opts = BenchmarkConfig(scenarios=["training"], train_steps=8).scenario_options("training")
    config, steps = train_config(opts, 16, "float32", 1, 1)
    _, fd, orders, _, fp = plan_cell(data, config, steps, 1024)
    assert fp == t["plan_fingerprint"]
    first = orders[0][:16]
    logits = get_backend("numpy").build(spec).predict(fd["x_train"][first])
    expected, _ = loss_and_accuracy(logits, fd["y_train"][first])
    assert t["step_losses"][0] == pytest.approx(expected, rel=1e-5)


def _as_cells(**recs) -> dict:
    return {
        "cells": [
            {
                "id": f"{name}/cpu/training/bs16",
                "backend": name,
                "device": "cpu",
                "scenario": "training",
                "batch_size": 16,
                "status": "ok",
                **rec,
            }
            for name, rec in recs.items()
        ]
    }


@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_a_backend_with_a_wrong_learning_rate_is_caught(monkeypatch) -> None:
    import dlbench.train.local as local

    _, right = _train("torch", steps=6)
    real = local.make_trainer_fn

    def buggy(framework):  # a backend whose step applies ten times the rate it is given
        make = real(framework)

        def make_trainer(spec, config, device):
            trainer = make(spec, config, device)
            step = trainer.train_step
            trainer.train_step = lambda batch, lr: step(batch, lr * 10)
            return trainer

        return make_trainer

    monkeypatch.setattr(local, "make_trainer_fn", buggy)
    _, wrong = _train("torch", steps=6)
    assert wrong["training"]["plan_fingerprint"] == right["training"]["plan_fingerprint"]
    doc = _as_cells(torch=right, other=wrong)
    summary = training_agreement(doc)
    bad = doc["cells"][1]
    assert bad["status"] == "invalid" and len(summary["disagreements"]) == 1
    # step 0's loss is computed before the first update: equal; the departure comes after
    assert bad["training"]["agreement"]["first_step_over"] >= 1
    assert "step losses differ" in bad["validity"]["reasons"][0]


@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_epochs_and_time_to_accuracy() -> None:
    _, rec = _train("torch", steps=None, epochs=2, target=0.5)
    t = rec["training"]
    assert t["epochs"] == 2 and len(t["epoch_times_s"]) == 2
    assert t["steps"] == 2 * (t["n_train"] // 16)  # whole epochs over the hold-out train part
    assert len(t["curves"]["test_accuracy"]) == 2
    first = next(i for i, a in enumerate(t["curves"]["test_accuracy"]) if a >= 0.5)
    assert t["epochs_to_accuracy"] == first + 1
    assert t["time_to_accuracy_s"] == pytest.approx(sum(t["epoch_times_s"][: first + 1]))
    _, never = _train("torch", steps=None, epochs=1, target=1.0)
    assert never["training"]["time_to_accuracy_s"] is None


@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_another_learning_rate_is_another_plan() -> None:
    _, right = _train("torch", steps=6)
    _, other = _train("torch", steps=6, lr=0.5)
    doc = _as_cells(torch=right, other=other)
    training_agreement(doc)
    assert doc["cells"][1]["status"] == "invalid"
    assert "another plan" in doc["cells"][1]["validity"]["reasons"][0]


@pytest.mark.slow  # TensorFlow / JAX import and tracing: 17-28 s on a loaded 2-core machine
@pytest.mark.parametrize(
    "framework",
    [
        pytest.param(f, marks=pytest.mark.skipif(not HAS[f], reason=f"{f} is not installed"))
        for f in ("tensorflow", "jax")
    ],
)
@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_frameworks_agree_with_torch(framework: str) -> None:
    _, ref = _train("torch", steps=6)
    _, other = _train(framework, steps=6)
    a, b = ref["training"], other["training"]
    assert a["plan_fingerprint"] == b["plan_fingerprint"]
    np.testing.assert_allclose(b["step_losses"], a["step_losses"], rtol=1e-4)


def test_a_run_skips_the_training_cells_of_backends_without_a_trainer(tmp_path) -> None:
    import dlbench
    from dlbench.execution import results as res

    events = []
    doc = dlbench.run(
        {"backends": ["numpy"], "scenarios": ["training"], "batch_sizes": [8, 16]},
        out=tmp_path / "r.json",
        on_event=lambda kind, payload: events.append((kind, payload)),
    )
    assert [c["status"] for c in doc["cells"]] == ["skipped", "skipped"]
    assert all("no training implementation" in c["skip_reason"] for c in doc["cells"])
    assert not [p for k, p in events if k == "worker"]  # nothing was started for them
    assert any("Skipped numpy/cpu/training/bs8" in w for w in doc["warnings"])
    assert doc["training"] == {"steps": 20, "groups": [], "disagreements": []}
    res.load(tmp_path / "r.json")  # the file passes the schema


# -- end to end (workers) ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not HAS["torch"], reason="torch is not installed")
def test_cli_run_training_end_to_end(run_cli, tmp_path) -> None:
    from dlbench.execution import results as res

    out = tmp_path / "r.json"
    proc = run_cli(
        "run",
        "--scenario",
        "training",
        "--backends",
        "torch,onnxruntime",
        "--batch-sizes",
        "16",
        "--train-steps",
        "8",
        "--threads",
        "1",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = res.load(out)  # checked against the schema
    cells = {c["backend"]: c for c in doc["cells"]}
    assert cells["onnxruntime"]["status"] == "skipped"
    assert "no training implementation" in cells["onnxruntime"]["skip_reason"]
    assert cells["torch"]["status"] == "ok" and len(cells["torch"]["training"]["step_losses"]) == 8
    assert doc["model"]["training_start"].startswith("seeded")
    assert "step p50" in proc.stdout or "train step p50" in proc.stdout
    proc = run_cli("compare", str(out), str(out))
    assert proc.returncode == 0 and "torch/cpu/training/bs16" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not all(HAS.values()), reason="needs torch, tensorflow and jax for the three-framework run"
)
def test_resnet20_in_three_frameworks(tmp_path) -> None:
    import dlbench

    doc = dlbench.run(
        {
            "model": "resnet20",
            "dataset": "synthetic",
            "dataset_options": {"shape": [3, 32, 32], "num_classes": 10, "num_samples": 256},
            "backends": ["torch", "tensorflow", "jax"],
            "scenarios": ["training"],
            "batch_sizes": [8],
            "train_steps": 8,
            "train_options": {"lr": 0.02},
            "intra_op_threads": 1,
        },
        out=tmp_path / "r.json",
    )
    cells = {c["backend"]: c for c in doc["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), [
        (c["id"], c.get("error"), c["validity"]) for c in cells.values()
    ]
    for b in ("tensorflow", "jax"):
        assert doc["training"]["groups"][0]["backends"][b]["ok"]
