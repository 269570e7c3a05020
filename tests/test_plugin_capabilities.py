"""A backend added by entry point gets every capability a built-in has.

A real installed distribution (dist-info with ``entry_points.txt``) on ``sys.path`` declares a
backend ``torch2`` by manifest: the torch implementations under another name. It is then built,
timed in ``dlbench.run``, exported to ONNX and trained through the normal public paths, exactly
like the built-in torch. Skips cleanly without torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="needs torch and onnxruntime",
)

PLUGIN = """
import dataclasses

from dlbench.backends.torch.config import MANIFEST as _TORCH

# framework-free: the manifest only names the implementations, nothing is imported here
MANIFEST = dataclasses.replace(_TORCH, name="torch2")
"""


def _install_plugin(root):
    (root / "torch2_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "torch2_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torch2_plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dlbench.backends]\ntorch2 = torch2_plugin:MANIFEST\n")


def _python(code, root, timeout=600):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=timeout,
    )


@pytest.mark.slow  # 29 s (a plugin's whole life in a subprocess); discovery stays in the next test
def test_entry_point_manifest_backend_builds_exports_and_trains(tmp_path):
    _install_plugin(tmp_path)
    code = """
    import json, sys
    import numpy as np
    import dlbench
    from dlbench.registry import backends

    # discovered, described and listed like a built-in, without importing torch
    assert "torch2" in dlbench.available_backends(), dlbench.available_backends()
    assert backends.entry("torch2").origin == "entry point of torch2_plugin"
    assert "torch" not in sys.modules
    from dlbench.export import EXPORTERS, SOURCES
    from dlbench.train.local import TRAINERS
    assert "torch2" in SOURCES and EXPORTERS["torch2"] == ("dynamo", "torchscript")
    assert "torch2" in TRAINERS
    assert "torch" not in sys.modules

    # build
    spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
    backend = dlbench.get_backend("torch2", mode="eager")
    assert backend.name == "torch2"
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    out = backend.build(spec).predict(x)
    ref = dlbench.get_backend("numpy").build(spec).predict(x)
    assert np.allclose(out, ref, atol=1e-4)

    # export to ONNX, checked in ONNX Runtime, through the public function
    from dlbench.export import to_onnx
    report = to_onnx(spec, "m.onnx", source="torch2", exporter="torchscript")
    assert report.source == "torch2" and report.parity["ok"], report.parity

    # train through the public function (its own worker process, like every backend)
    from dlbench.train import train
    doc = train({"epochs": 1, "batch_size": 64, "intra_op_threads": 1}, model="mlp",
                dataset="digits", backends=["torch2"], timeout=300)
    info = doc["backends"]["torch2"]
    assert info["status"] == "ok", info.get("error")
    assert info["runs"][0]["final"]["test_accuracy"] > 0.2, info["runs"][0]["final"]

    # benchmark it, and its ONNX export (the composite torch2>onnxruntime)
    cfg = {"backends": ["torch2"], "via_onnx": True, "scenarios": ["latency"],
           "cell_timeout": 300,
           "stop_rule": {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0,
                         "max_time": 2.0}}
    res = dlbench.run(cfg)
    status = {c["id"]: c["status"] for c in res["cells"]}
    assert status == {"torch2/cpu/latency/bs1": "ok",
                      "torch2>onnxruntime/cpu/latency/bs1": "ok"}, status
    assert res["backends"]["torch2>onnxruntime"]["cpu"]["export"]["source"] == "torch2"
    print("OK")
    """
    proc = _python(code, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    assert proc.stdout.strip().endswith("OK")


def test_a_plugin_without_a_capability_says_so(tmp_path):
    (tmp_path / "bare_plugin.py").write_text(
        textwrap.dedent(
            """
            import dataclasses
            from dlbench.backends.numpy.config import MANIFEST as _NP
            MANIFEST = dataclasses.replace(_NP, name="bare")
            """
        )
    )
    dist = tmp_path / "bare_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bare_plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dlbench.backends]\nbare = bare_plugin:MANIFEST\n")
    code = """
    from dlbench.errors import ConfigError
    from dlbench.export import to_onnx
    from dlbench.train.local import run_folds
    import dlbench
    try:
        to_onnx(dlbench.zoo.get("mlp"), "x.onnx", source="bare")
    except ConfigError as exc:
        print("export:", exc)
    try:
        run_folds("bare", None, None, [], {}, 10)
    except ConfigError as exc:
        print("train:", exc)
    """
    proc = _python(code, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "export: Expected the export source to be one of" in proc.stdout
    assert "train: Expected a backend with a training implementation" in proc.stdout
    assert json.dumps(proc.stdout)
