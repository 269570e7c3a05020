"""The executor settings of a benchmark config (issue 18), without a cluster: validated with
"Expected X. Received: Y" messages, refused with the local executor, and never importing Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlbench.errors import ConfigError
from dlbench.execution.config import BenchmarkConfig
from dlbench.execution.executors import get_executor, split_device


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"executor": "slurm"},
            "Expected executor in ('local', 'ray'). Received: executor='slurm'",
        ),
        ({"executor": "ray", "nodes": "gpu"}, "Expected `nodes` to be 'all' or KEY=VALUE"),
        ({"executor": "ray", "nodes": "=1"}, "Expected `nodes` to be 'all' or KEY=VALUE"),
        ({"executor": "ray", "retries": -1}, "Expected `retries` to be an int >= 0"),
        ({"executor": "ray", "retries": True}, "Expected `retries` to be an int >= 0"),
        ({"executor": "ray", "allow_colocate": "yes"}, "Expected `allow_colocate` to be true"),
        ({"executor": "ray", "ray_address": ""}, "Expected `ray_address` to be a non-empty"),
        ({"nodes": "all"}, "Expected executor='ray' for the Ray settings. Received: executor="),
        ({"retries": 2}, "retries=2"),
    ],
)
def test_bad_executor_settings_are_refused(fields, message):
    with pytest.raises(ConfigError) as info:
        BenchmarkConfig(backends=["numpy"], **fields)
    assert message in str(info.value)


def test_good_settings_and_the_local_default():
    cfg = BenchmarkConfig(backends=["numpy"], executor="ray", nodes="site=a", retries=1)
    assert (cfg.nodes, cfg.retries, cfg.allow_colocate) == ("site=a", 1, False)
    local = get_executor(BenchmarkConfig(backends=["numpy"]))
    assert local.name == "local" and not local.concurrent
    cells = BenchmarkConfig(backends=["numpy"]).cells()
    assert local.expand(cells, {}) is cells  # no node dimension: ids as they always were


def test_split_device():
    assert split_device("cpu@node-1") == ("cpu", "node-1")
    assert split_device("cuda:0") == ("cuda:0", None)


def test_configs_and_the_runner_never_import_ray():
    code = (
        "import sys, dlbench, dlbench.execution.runner\n"
        "from dlbench.execution.config import BenchmarkConfig\n"
        "BenchmarkConfig(backends=['numpy'], executor='ray', nodes='all')\n"
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _fleet_doc(cpu_b: str, driver_cpu: str) -> dict:
    nodes = {
        name: {"environment": {"cpu": {"model": cpu}, "gpus": []}}
        for name, cpu in (("a", "Xeon A"), ("b", cpu_b))
    }
    return {
        "model": {"fingerprint": "f"},
        "dataset": {},
        "config": {},
        "environment": {"cpu": {"model": driver_cpu}, "executor": {"nodes": nodes}},
        "backends": {},
        "cells": [{"device": "cpu@a"}, {"device": "cpu@b"}],
    }


def test_compare_checks_a_fleets_machines_node_by_node():
    from dlbench.analysis.compare import fairness_differences

    # the driver's own CPU does not time anything in a Ray run: not a difference
    unfair, _ = fairness_differences(_fleet_doc("Epyc B", "laptop"), _fleet_doc("Epyc B", "other"))
    assert unfair == []
    unfair, _ = fairness_differences(_fleet_doc("Epyc B", "x"), _fleet_doc("Graviton", "x"))
    assert unfair == ["node b CPU model: 'Epyc B' vs 'Graviton'"]


def test_shipped_data_is_the_split_the_driver_loaded(tmp_path, monkeypatch):
    """What a Ray node's worker loads in place of the dataset: the driver's arrays, for the
    run's dataset and split only (another split, e.g. int8 calibration, loads as usual)."""
    import numpy as np

    import dlbench.datasets as datasets
    from dlbench.execution.executors import shipped

    original = datasets.load("digits", split="test")
    inputs, targets = original.get_batch(np.arange(len(original))).inputs, None
    targets = original.get_batch(np.arange(len(original))).targets
    folder = shipped.write(
        tmp_path / "d", "digits", inputs * 0 + 7, targets, original.info.to_dict()
    )
    monkeypatch.setattr(datasets, "load", datasets.load)  # restored after the test
    shipped._install(str(folder))
    got = datasets.load("digits", split="test")
    assert got.info == original.info and len(got) == len(original)
    assert np.all(got.get_batch(np.arange(3)).inputs == 7)  # the shipped arrays, not the files
    assert np.array_equal(got.get_batch(np.arange(len(got))).targets, targets)
    train = datasets.load("digits", split="train")
    assert train.info.split == "train" and not np.all(train.get_batch([0]).inputs == 7)
