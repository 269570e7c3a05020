"""``dlbench train`` on a generated CIFAR-10 (official python format): resnet20, one epoch, the
cifar preset (crop + flip, one-cycle, label smoothing) in every installed framework; the
frameworks' per-step losses agree (slow: a real epoch of a real network)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from .conftest import FRAMEWORKS

INSTALLED = [f for f in FRAMEWORKS if importlib.util.find_spec(f) is not None]


@pytest.mark.slow
@pytest.mark.skipif(not INSTALLED, reason="needs torch, tensorflow or jax")
def test_resnet20_one_epoch_on_generated_cifar(run_cli, tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
    import formats

    root = tmp_path / "cifar"
    train, test = formats.random_cifar(320, 10, seed=0), formats.random_cifar(64, 10, seed=1)
    formats.write_files(formats.cifar10_files(train, test), root)
    out = tmp_path / "t.json"
    proc = run_cli(
        "train", "--model", "resnet20", "--dataset", "cifar10", "--root", str(root),
        "--preset", "cifar", "--epochs", "1", "--batch-size", "32", "--threads", "1",
        "--backends", ",".join(INSTALLED), "--out", str(out), "-q", timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(out.read_text())
    assert doc["config"]["train"]["augment"] == "crop_flip"
    for f in INSTALLED:
        info = doc["backends"][f]
        assert info["status"] == "ok", info
        assert info["runs"][0]["steps"] == 320 // 32
    for f, agree in (doc.get("agreement") or {}).get("backends", {}).items():
        assert agree["max_abs_loss_diff_first_steps"] < 1e-4, (f, agree)
