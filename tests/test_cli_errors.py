"""Errors a user meets on the command line: one line, the documented exit code, nothing lost.

Run through a real subprocess (``run_cli``), the way a user sees them.
"""

from __future__ import annotations

import json

import pytest

from dlbench.cli import main
from dlbench.cli.run import config_from_args


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


def test_resume_without_out_is_a_usage_error(run_cli):
    proc = run_cli("run", "--backends", "numpy", "--resume")
    assert proc.returncode == 2, proc.stderr
    assert "dlbench: error: Expected the result file to resume (--out FILE)" in proc.stderr
    _no_traceback(proc)


def test_an_existing_result_is_never_replaced_silently(run_cli, tmp_path):
    out = tmp_path / "r.json"
    out.write_text('{"keep": "me"}')
    proc = run_cli("run", "--backends", "numpy", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "exists; continue it with --resume or replace it with --force" in proc.stderr
    assert json.loads(out.read_text()) == {"keep": "me"}  # untouched
    _no_traceback(proc)


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_unwritable_out_is_refused_before_the_run(run_cli, tmp_path, where):
    if where == "folder":
        out, expected = tmp_path, "Expected --out to be a file path"
    else:
        (tmp_path / "file").write_text("x")
        out, expected = tmp_path / "file" / "r.json", "Expected a folder for --out"
    proc = run_cli("run", "--backends", "numpy", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    _no_traceback(proc)


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(run_cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "dlbench.result", "cells": [')  # truncated
    proc = run_cli("compare", str(bad), str(bad))
    assert proc.returncode in (1, 2), proc.stderr
    assert proc.stderr.strip().splitlines()[0].startswith("dlbench: error: ")
    _no_traceback(proc)
    debug = run_cli("compare", str(bad), str(bad), "--debug")
    assert debug.returncode == proc.returncode
    assert "Traceback" in debug.stderr and "dlbench: error: " in debug.stderr


def test_parity_usage_error_exits_2(run_cli):
    proc = run_cli("parity", "--backends", "numpy", "--batch-size", "0")
    assert proc.returncode == 2, proc.stderr
    assert "Expected `batch_size` to be a positive int. Received: 0" in proc.stderr


def test_one_name_for_the_dataset_root_and_dataset_options(tmp_path):
    from dlbench.cli import build_parser

    parser = build_parser()
    for flag in ("--root", "--dataset-root"):
        args = parser.parse_args(["run", flag, str(tmp_path), "-D", "md5=null", "--download"])
        cfg = config_from_args(args)
        assert cfg.dataset_root == str(tmp_path)
        assert cfg.dataset_options == {"md5": None, "download": True}
    for cmd in (["train"], ["data", "check", "cifar10"]):
        args = parser.parse_args([*cmd, "--root", str(tmp_path)])
        assert str(tmp_path) in (getattr(args, "dataset_root", None), getattr(args, "root", None))


def test_resume_takes_the_config_from_the_result_file(tmp_path):
    from dlbench.cli import build_parser
    from dlbench.execution import environment, results
    from dlbench.execution.config import BenchmarkConfig

    out = tmp_path / "r.json"
    cfg = BenchmarkConfig(backends=["numpy"], batch_sizes=[2, 3], seed=5)
    results.write_atomic(out, results.new_document(cfg.to_dict(), environment.capture()))
    args = build_parser().parse_args(["run", "--out", str(out), "--resume", "--min-iters", "7"])
    resumed = config_from_args(args)
    assert resumed.batch_sizes == [2, 3] and resumed.seed == 5 and resumed.backends == ["numpy"]
    assert resumed.stop_rule["min_iters"] == 7  # flags still override


def test_interrupt_before_anything_was_written_says_so(monkeypatch, tmp_path, capsys):
    import dlbench.execution.runner as runner

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    out = tmp_path / "never.json"
    code = main(["run", "--backends", "numpy", "--out", str(out), "--quiet"])
    assert code == 130
    printed = capsys.readouterr().out
    assert "before any result was written" in printed and str(out) not in printed


def test_strict_turns_an_invalid_cell_into_exit_1(run_cli, tmp_path):
    common = ["run", "--backends", "numpy", "--scenario", "latency", "--quiet"]
    rule = ["--min-iters", "100000", "--min-time", "0", "--max-time", "0.2"]  # cannot be met
    lenient = run_cli(*common, *rule, "--out", str(tmp_path / "a.json"))
    assert lenient.returncode == 0, lenient.stderr
    strict = run_cli(*common, *rule, "--strict", "--out", str(tmp_path / "b.json"))
    assert strict.returncode == 1, strict.stderr
    assert "INVALID cell(s): numpy/cpu/latency/bs1" in " ".join(strict.stdout.split())
