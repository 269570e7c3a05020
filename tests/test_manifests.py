"""Backend manifests: framework-free, complete, and the one place options are checked.

Every ``backends/<name>/config.py`` describes its backend without importing the framework; the
registry registers backends by manifest; options are validated in the parent before any worker
starts (a typo is exit 2 on the command line and no process is spawned).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dlbench
from dlbench.errors import ConfigError, RegistryError
from dlbench.model.manifest import CAPABILITIES, BackendManifest, BackendOptions
from dlbench.registry import backends

BUILTINS = ["jax", "numpy", "onnxruntime", "tensorflow", "torch"]


def test_builtins_are_registered_by_manifest():
    assert set(BUILTINS) <= set(backends.names())
    for name in BUILTINS:
        m = backends.manifest(name)
        assert isinstance(m, BackendManifest) and m.name == name
        assert m.has("build") and set(m.capabilities) <= set(CAPABILITIES)
        for target in m.capabilities.values():
            assert isinstance(target, str) and ":" in target, target  # lazy "module:attr"


def test_manifests_import_no_framework():
    code = (
        "import sys\n"
        "from dlbench.registry import backends\n"
        "ms = [backends.manifest(n) for n in backends.names()]\n"
        "env = [m.worker_env(1, 1) for m in ms]\n"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'jaxlib', 'onnxruntime', 'onnx', 'keras')"
        " if m in sys.modules]\n"
        "print(len(ms), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1:] == ["[]"], out.stdout


def test_capabilities_follow_the_manifest():
    assert backends.with_capability("train") == ["torch", "tensorflow", "jax"]
    assert backends.export_sources() == ["torch", "tensorflow", "jax"]
    assert backends.onnx_runtime() == "onnxruntime"
    assert not backends.manifest("numpy").has("export")
    with pytest.raises(RegistryError, match="has no 'train' capability"):
        backends.capability("numpy", "train")


@pytest.mark.parametrize("name", BUILTINS)
def test_manifest_options_match_the_backend(name):
    """The options dataclass names exactly the options the backend accepts."""
    m = backends.manifest(name)
    for module in m.requires:
        pytest.importorskip(module)
    cls = backends.get(name)
    assert sorted(m.option_names()) == sorted(cls.default_options)


def test_validate_options_catches_typos_and_bad_values():
    m = backends.manifest("torch")  # no torch import: the manifest is enough
    assert m.validate_options({"mode": "compile", "intra_op_threads": 2}) == {
        "mode": "compile",
        "intra_op_threads": 2,
    }
    with pytest.raises(ConfigError, match=r"Unknown option\(s\) \['mdoe'\] for backend 'torch'"):
        m.validate_options({"mdoe": "compile"})
    with pytest.raises(ConfigError, match="expected `mode` to be one of"):
        m.validate_options({"mode": "compiled"})
    with pytest.raises(ConfigError, match="expected `intra_op_threads` to be a positive int"):
        backends.manifest("numpy").validate_options({"intra_op_threads": 0})
    with pytest.raises(ConfigError, match="expected `channels_last` to be bool"):
        m.validate_options({"channels_last": "yes"})


def test_oom_markers_come_from_the_manifests():
    def err(name, base=Exception):
        return type(name, (base,), {})

    assert backends.manifest("torch").is_oom(err("OutOfMemoryError", RuntimeError)("x"))
    assert not backends.manifest("jax").is_oom(err("OutOfMemoryError", RuntimeError)("x"))
    assert backends.manifest("jax").is_oom(RuntimeError("RESOURCE_EXHAUSTED: while allocating"))
    assert backends.manifest("numpy").is_oom(MemoryError())  # generic, every backend
    assert not backends.manifest("torch").is_oom(ValueError("bad input"))


def test_worker_env_is_the_manifests():
    from dlbench.execution.runner import thread_env

    only_numpy = thread_env(2, 1, backends=["numpy"])
    assert only_numpy["OMP_NUM_THREADS"] == "2"
    assert not any(k.startswith(("TF_", "XLA_")) for k in only_numpy)
    tf = thread_env(2, 1, backends=["tensorflow"])
    assert tf["TF_NUM_INTRAOP_THREADS"] == "2" and tf["TF_NUM_INTEROP_THREADS"] == "1"
    assert thread_env(1, 1, backends=["jax"])["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_composite_backend_is_resolved_by_the_registry():
    entry = backends.entry("jax>onnxruntime")
    m = entry.manifest()
    assert m.composite == ("jax", "onnxruntime")
    assert m.options is backends.manifest("onnxruntime").options
    with pytest.raises(RegistryError, match="Unknown backend"):
        backends.entry("numpy>onnxruntime")  # numpy cannot export
    with pytest.raises(RegistryError, match="Unknown backend"):
        backends.entry("torch>jax")  # jax does not run ONNX files
    assert "jax>onnxruntime" not in backends.names()


# -- options are checked before any worker starts ----------------------------------------------
@pytest.fixture
def no_worker(monkeypatch):
    """Fail the test if the runner starts any process."""
    import dlbench.execution.supervisor as supervisor

    started = []

    def refuse(*args, **kwargs):
        started.append(args)
        raise AssertionError(f"a worker was started: {args}")

    monkeypatch.setattr(supervisor.subprocess, "Popen", refuse)  # every job starts here
    monkeypatch.setattr(supervisor.subprocess, "run", refuse)
    return started


@pytest.mark.parametrize(
    "backend, options, match",
    [
        ("numpy", {"intra_op_thread": 2}, r"Unknown option\(s\) \['intra_op_thread'\]"),
        ("torch", {"mode": "compiled"}, "expected `mode` to be one of"),
        ("onnxruntime", {"graph_optimisation_level": "all"}, "Unknown option"),
    ],
)
def test_a_typo_in_backend_options_stops_the_run_before_any_worker(
    backend, options, match, no_worker, tmp_path
):
    cfg = {"backends": [backend], "scenarios": ["latency"], "backend_options": {backend: options}}
    with pytest.raises(ConfigError, match=match):
        dlbench.run(cfg, out=tmp_path / "r.json")
    assert no_worker == []
    assert not (tmp_path / "r.json").exists()


def test_a_typo_in_backend_options_is_exit_2_on_the_command_line(no_worker, tmp_path, capsys):
    from dlbench.cli import main

    code = main(
        [
            "run",
            "--backends",
            "numpy",
            "--scenario",
            "latency",
            "-O",
            "numpy.intra_op_thread=2",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "intra_op_thread" in capsys.readouterr().err
    assert no_worker == []


def test_via_onnx_options_are_the_targets(no_worker, tmp_path):
    cfg = {
        "backends": ["jax>onnxruntime"],
        "scenarios": ["latency"],
        "backend_options": {"onnxruntime": {"execution_mode": "sideways"}},
    }
    with pytest.raises(ConfigError, match="execution_mode"):
        dlbench.run(cfg, out=tmp_path / "r.json")
    assert no_worker == []


def test_options_dataclass_is_extensible():
    from dataclasses import dataclass

    @dataclass
    class MyOptions(BackendOptions):
        depth: int = 1

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.depth < 1:
                raise ConfigError(f"Backend {self.backend!r}: expected depth >= 1")

    m = BackendManifest(name="mine", capabilities={"build": "x:y"}, options=MyOptions)
    assert m.validate_options({"depth": 3}) == {"depth": 3}
    with pytest.raises(ConfigError, match="Backend 'mine': expected depth >= 1"):
        m.validate_options({"depth": 0})
    with pytest.raises(RegistryError, match="must declare `build`"):
        BackendManifest(name="nobuild")
    assert json.dumps(sorted(m.option_names()))
