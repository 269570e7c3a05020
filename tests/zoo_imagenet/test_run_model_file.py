"""``dlbench run --model model.onnx`` and ``dlbench.zoo.get`` / ``load`` on an ONNX path: the file
is imported and run natively by the backends, with parity against the float64 reference and
against ONNX Runtime running the original file."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from dlbench import zoo  # noqa: E402
from dlbench.errors import ConfigError  # noqa: E402

FAST = ("--min-iters", "3", "--min-time", "0", "--max-time", "2")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """A small CNN for the digits dataset (1x8x8, 10 classes), exported by torch.onnx."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
    ).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("onnx") / "digits_net.onnx"
    x = torch.randn(2, 1, 8, 8)
    torch.onnx.export(
        net,
        (x,),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )
    return path, net


def test_zoo_get_and_load_import_an_onnx_path(onnx_file):
    import torch

    path, net = onnx_file
    spec = zoo.load(path)
    assert spec.input_shape == (1, 8, 8) and spec.output_shape == (10,)
    assert zoo.get(str(path)).fingerprint() == spec.fingerprint()
    assert zoo.get(str(path), num_classes=10).fingerprint() == spec.fingerprint()
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    from dlbench import get_backend

    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(get_backend("numpy").build(spec).predict(x), want, atol=1e-5)
    with pytest.raises(ConfigError, match="output 5 classes"):
        zoo.get(str(path), num_classes=5)
    with pytest.raises(ConfigError, match="no model options"):
        zoo.get(str(path), softmax=True)
    with pytest.raises(ConfigError, match="not found"):
        zoo.load(path.with_name("missing.onnx"))
    other = path.with_suffix(".txt")
    other.write_text("x")
    with pytest.raises(ConfigError, match=r"ending in \.onnx or \.json"):
        zoo.load(other)


@pytest.mark.parametrize(
    "backends",
    [
        "numpy,onnxruntime",
        pytest.param("", marks=pytest.mark.slow, id="every-installed-backend"),
    ],
)
def test_cli_run_onnx_file_with_parity_against_the_original(run_cli, onnx_file, tmp_path, backends):
    from dlbench.registry import backends as registry

    path, _ = onnx_file
    names = backends.split(",") if backends else registry.available()
    out = tmp_path / "r.json"
    proc = run_cli(
        "run",
        "--model",
        str(path),
        "--dataset",
        "digits",
        "--backends",
        ",".join(names),
        "--scenario",
        "latency",
        "--batch-sizes",
        "4",
        *FAST,
        "--out",
        str(out),
        "--quiet",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(out.read_text())
    original = doc["model"]["onnx_original"]
    assert original["path"].endswith("digits_net.onnx") and len(original["sha256"]) == 64
    assert original["versions"]["onnxruntime"]
    assert original["parity"]["ok"] and original["parity"]["max_abs_diff"] < 1e-5
    assert doc["model"]["onnx_import"]["onnx_ops"]["Conv"] == 1
    for backend in names:
        info = doc["backends"][backend]["cpu"]
        assert info["parity"]["ok"], (backend, info["parity"])
        assert info["parity_onnx_original"]["ok"], (backend, info["parity_onnx_original"])
    assert {c["status"] for c in doc["cells"]} == {"ok"}
    assert "Import check, digits_net.onnx in ONNX Runtime" in proc.stdout
    assert "onnxruntime/cpu vs digits_net.onnx in ONNX Runtime: ok" in proc.stdout


def test_an_import_that_differs_from_the_file_is_reported(onnx_file, tmp_path, monkeypatch):
    """The check against the original file is not vacuous: an import that came out wrong (a
    weight changed after import) is a failed parity record, a warning and a failed exit."""
    import dlbench
    import dlbench.zoo

    path, _ = onnx_file
    real = dlbench.zoo.load

    def corrupted(p, input_shape=None):
        spec = real(p, input_shape=input_shape)
        key = next(k for k, v in spec.params.items() if v.ndim == 2)
        spec.params[key] = spec.params[key] * np.float32(-1.0)
        spec._invalidate()
        return spec

    monkeypatch.setattr(dlbench.zoo, "load", corrupted)
    doc = dlbench.run(
        {
            "model": str(path),
            "dataset": "digits",
            "backends": ["numpy"],
            "scenarios": ["latency"],
            "batch_sizes": [2],
            "stop_rule": {"min_iters": 3, "min_time": 0.0, "max_time": 1.0},
        },
        out=tmp_path / "bad.json",
    )
    parity = doc["model"]["onnx_original"]["parity"]
    assert not parity["ok"] and parity["max_abs_diff"] > 1e-3
    assert any(w.startswith("IMPORT MISMATCH") for w in doc["warnings"])
    # the backend agrees with the (wrong) spec, and disagrees with the file
    info = doc["backends"]["numpy"]["cpu"]
    assert info["parity"]["ok"] and not info["parity_onnx_original"]["ok"]
    from rich.console import Console

    from dlbench.cli.run import _print_model_checks

    console = Console(record=True, width=200)
    _print_model_checks(doc, console)
    assert "MISMATCH" in console.export_text()
