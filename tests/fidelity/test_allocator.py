"""Issue 23: the workers' allocator settings (same for every backend, recorded, switchable) and
page faults per call in every timed cell, with a warning for a backend far above the others."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import dlbench
from dlbench.errors import ConfigError
from dlbench.execution import allocator
from dlbench.execution.config import BenchmarkConfig
from dlbench.execution.measure import time_model

FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}
GLIBC = platform.libc_ver()[0] == "glibc"


def test_tuned_sets_the_glibc_variables_and_system_removes_them():
    inherited = {"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "7"}
    tuned = allocator.worker_env(inherited, "tuned")
    assert tuned["MALLOC_MMAP_THRESHOLD_"] == "33554432"
    assert tuned["MALLOC_TRIM_THRESHOLD_"] == "1073741824"
    assert tuned["PATH"] == "/bin"
    system = allocator.worker_env(inherited, "system")
    assert not set(allocator.GLIBC_TUNED) & set(system)  # an inherited value is not kept either
    assert system["PATH"] == "/bin"
    assert inherited == {"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "7"}  # not modified


def test_in_force_names_what_the_environment_holds():
    assert allocator.in_force(allocator.worker_env({}, "tuned"))["name"] == "tuned"
    assert allocator.in_force({})["name"] == "system"
    assert allocator.in_force({"MALLOC_TRIM_THRESHOLD_": "1"})["name"] == "custom"
    pre = allocator.in_force({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})
    assert pre["name"] == "system+preload" and pre["env"]["LD_PRELOAD"].endswith("so.2")


@pytest.mark.parametrize("bad", ["jemalloc", "", None, 1])
def test_an_unknown_allocator_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="allocator"):
        BenchmarkConfig(allocator=bad)
    with pytest.raises(ConfigError, match="allocator"):
        allocator.worker_env({}, bad)


CHILD = """
import json, resource, numpy as np
from dlbench.execution.allocator import in_force
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def call():  # a forward's activations: a few MiB-sized temporaries, all freed at the end
    acts = [np.ones(n, np.float32) for n in (2 << 20, 2 << 20, 2 << 20, 1 << 20)]
    del acts
call(); call()
f0 = faults()
for _ in range(10):
    call()
print(json.dumps({"in_force": in_force(), "faults_per_call": (faults() - f0) / 10}))
"""


@pytest.mark.skipif(not GLIBC, reason="the tuned settings are glibc's")
def test_tuned_workers_stop_faulting_freed_memory_back_in():
    """The effect itself, in fresh processes: with glibc's defaults the heap is trimmed (or the
    blocks unmapped) when a call's temporaries are freed and the next call faults the pages
    back in (~1,500 faults per call here); tuned, the freed memory is reused (~0)."""
    out = {}
    for name in ("system", "tuned"):
        env = allocator.worker_env(dict(os.environ), name)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
        )
        out[name] = json.loads(proc.stdout)
    assert out["system"]["in_force"]["name"] == "system"
    assert out["tuned"]["in_force"]["name"] == "tuned"
    assert out["system"]["faults_per_call"] > 500
    assert out["tuned"]["faults_per_call"] < 50


class _Touching:
    """A fake model whose every call maps and touches a fresh 16 MiB anonymous region (plain
    ``mmap``, small pages, nothing an allocator could keep for the next call): page faults on
    every call, whatever the process's allocator state."""

    def to_device(self, batch):
        return batch

    def forward(self, x):
        import mmap

        with mmap.mmap(-1, 16 << 20) as m:
            if hasattr(m, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
                m.madvise(mmap.MADV_NOHUGEPAGE)
            a = np.frombuffer(m, np.uint8)
            a[::4096] = 1  # one write per 4 KiB page
            total = int(a.sum())
            del a
        return np.full(4, total, np.float32)

    def sync(self, y):
        return None

    def to_numpy(self, y):
        return y


def test_time_model_records_page_faults_per_call(monkeypatch):
    monkeypatch.setattr("dlbench.execution.measure.check_model", lambda m: None)
    t = time_model(_Touching(), np.zeros((1, 1)), **FAST)
    faults = t.to_dict()["page_faults"]
    assert faults["calls"] == t.n
    # the reference: the same calls counted here, directly
    import resource

    model, before = _Touching(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        model.forward(None)
    direct = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    assert direct > 100  # fresh pages every call (4,096 small pages of 16 MiB)
    assert 0.5 * direct < faults["minor_per_call"] < 2 * direct
    assert faults["minor"] == pytest.approx(faults["minor_per_call"] * t.n)
    spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8))
    quiet = time_model(dlbench.get_backend("numpy").build(spec), np.zeros((2, 1, 8, 8)), **FAST)
    assert quiet.to_dict()["page_faults"]["minor_per_call"] < 100  # tiny arrays: heap reuse


def _cell(backend, per_call, batch=32, status="ok"):
    faults = allocator.faults_dict(int(per_call * 10), 0, 10)
    return {
        "backend": backend,
        "device": "cpu",
        "scenario": "throughput",
        "batch_size": batch,
        "status": status,
        "timing": {"page_faults": faults},
    }


def test_a_backend_far_above_the_others_in_faults_is_warned():
    cells = [_cell("torch", 14_000), _cell("jax", 40), _cell("tensorflow", 60)]
    (msg,) = allocator.fault_warnings(cells)
    assert msg.startswith("torch takes 14,000 page faults per call") and "median: 50" in msg
    # below the floor, within the ratio, another batch size, a failed cell: no warning
    assert allocator.fault_warnings([_cell("torch", 90), _cell("jax", 1)]) == []
    assert allocator.fault_warnings([_cell("torch", 900), _cell("jax", 100)]) == []
    assert allocator.fault_warnings([_cell("torch", 9000), _cell("jax", 1, batch=1)]) == []
    assert allocator.fault_warnings([_cell("torch", 9000, status="failed"), _cell("jax", 1)]) == []
    assert allocator.fault_warnings([{"backend": "numpy", "timing": None}]) == []


@pytest.mark.parametrize("name", ["tuned", pytest.param("system", marks=pytest.mark.slow)])
def test_a_run_records_the_allocator_and_the_faults_of_each_cell(tmp_path, name):
    cfg = BenchmarkConfig(
        backends=["numpy"],
        scenarios=["throughput"],
        batch_sizes=[2],
        stop_rule=FAST,
        cell_timeout=60,
        allocator=name,
    )
    doc = dlbench.run(cfg, out=tmp_path / "r.json")
    assert doc["config"]["allocator"] == name
    settings = doc["backends"]["numpy"]["cpu"]["settings"]
    assert settings["allocator"]["name"] == name
    has_vars = set(allocator.GLIBC_TUNED) <= set(settings["allocator"]["env"])
    assert has_vars is (name == "tuned")
    (cell,) = doc["cells"]
    faults = cell["timing"]["page_faults"]
    assert faults["calls"] == cell["timing"]["n"] and faults["minor_per_call"] >= 0
    assert json.loads((tmp_path / "r.json").read_text())["cells"][0]["timing"]["page_faults"]


def test_the_fairness_statement_shows_the_allocator():
    from dlbench.report.table import fairness_statement

    doc = {"config": {"intra_op_threads": 1, "allocator": "system"}, "backends": {}}
    assert "memory allocator system." in fairness_statement(doc)[0]
    del doc["config"]["allocator"]  # a result written before the setting existed
    assert "allocator" not in fairness_statement(doc)[0]


def test_the_allocator_flag_reaches_the_config():
    from dlbench.cli import build_parser
    from dlbench.cli.run import config_from_args

    for value in ("system", "tuned"):
        args = build_parser().parse_args(["run", "--allocator", value, "--backends", "numpy"])
        assert config_from_args(args).allocator == value
    args = build_parser().parse_args(["run", "--backends", "numpy"])
    assert config_from_args(args).allocator == "tuned"  # the default when the flag is absent
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--allocator", "jemalloc"])
