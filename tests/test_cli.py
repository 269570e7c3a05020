"""The command line, through a real subprocess."""

from __future__ import annotations

import json

import pytest

from dlbench.execution import results


def test_run_numpy_prints_table_and_writes_valid_file(run_cli, tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli(
        "run",
        "--backends",
        "numpy",
        "--scenario",
        "latency,throughput,accuracy",
        "--min-iters",
        "5",
        "--min-time",
        "0",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "numpy" in proc.stdout and "latency p50" in proc.stdout
    doc = json.loads(out.read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, results.schema())
    assert {c["status"] for c in doc["cells"]} == {"ok"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--batch-sizes", "0"], "Expected `batch_sizes item` to be an int >= 1"),
        (["run", "--batch-sizes", "a,b"], "expected comma-separated integers"),
        (["run", "--backends", "nope"], "Unknown backend 'nope'"),
        (["run", "--device", "tpu"], "Expected device to be one of"),
        (["run", "--config", "missing.toml"], "Config file not found"),
        (["run", "-O", "torchmode=1"], "expected BACKEND.KEY=VALUE"),
        (["list", "things"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(run_cli, args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_command_prints_help_and_exits_2(run_cli):
    proc = run_cli()
    assert proc.returncode == 2
    assert "usage: dlbench" in proc.stdout


@pytest.mark.parametrize("what", ["backends", "models", "datasets", "metrics", "scenarios"])
def test_list(run_cli, what):
    proc = run_cli("list", what)
    assert proc.returncode == 0, proc.stderr
    expected = {
        "backends": "numpy",
        "models": "mlp",
        "datasets": "digits",
        "metrics": "accuracy",
        "scenarios": "latency",
    }[what]
    assert expected in proc.stdout


def test_env_json(run_cli):
    proc = run_cli("env", "--json")
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)
    assert env["cpu"]["logical_cores"] >= 1
    assert "numpy" in env["packages"]
    assert env["dlbench"]["version"]


def test_missing_model_file_is_a_usage_error_exit_2(run_cli, tmp_path):
    # (exit 1 for a failed cell or parity check: tests/mutation_killers/test_cli_verdicts.py)
    proc = run_cli("run", "--backends", "numpy", "--model", str(tmp_path / "none.json"))
    assert proc.returncode == 2 and "Model file not found" in proc.stderr


def test_default_run_covers_every_installed_backend(run_cli, tmp_path):
    """`dlbench run` with no model/backend arguments: a row per installed backend."""
    import dlbench

    out = tmp_path / "default.json"
    proc = run_cli(
        "run", "--min-iters", "5", "--min-time", "0.05", "--out", str(out), "--quiet", timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    ran = {c["backend"] for c in doc["cells"] if c["status"] == "ok"}
    expected = set(dlbench.available_backends())
    if expected - {"numpy"}:  # the float64 reference is timed only with --with-reference
        expected -= {"numpy"}
    assert ran == expected
    for backend in ran:
        assert backend in proc.stdout
    assert all(info["cpu"]["parity"]["ok"] for info in doc["backends"].values())
