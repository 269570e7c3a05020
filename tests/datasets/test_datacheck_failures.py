"""``dlbench data check`` never says "passed" when a check could not run: a split that exists
but does not load (corrupt, refused pickle, wrong dtype, NaN box) is an error, as the user sees
it through the command line (exit code, verdict line, no traceback)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlbench.data.check import check
from dlbench.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "dlbench.cli", "data", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def cifar(tmp_path: Path, formats) -> Path:
    (xtr, _), (xte, _) = formats.random_cifar(40, 10, 1), formats.random_cifar(20, 10, 2)
    balanced = (xtr, np.arange(40) % 10), (xte, np.arange(20) % 10)
    formats.write_files(formats.cifar10_files(*balanced), tmp_path)
    return tmp_path


def _batch(folder: Path) -> Path:
    return folder / "cifar-10-batches-py" / "data_batch_3"


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
        (lambda p: p.write_bytes(pickle.dumps({b"data": _RunsCode()}, protocol=2)), "Refused"),
        ("float", "uint8 array"),
    ],
    ids=["corrupt", "refused-pickle", "wrong-dtype"],
)
def test_split_that_exists_but_does_not_load_is_an_error(cifar: Path, formats, damage, match):
    path = _batch(cifar)
    if damage == "float":
        x = np.zeros((8, 3072), np.float32)
        path.write_bytes(formats.py2_pickle({b"data": x, b"labels": [0] * 8}))
    else:
        damage(path)
    report = check("cifar10", root=str(cifar))
    assert not report.ok
    load = [i for i in report.errors if i.check == "load"]
    assert load and load[0].split == "train" and match in load[0].message
    assert "exists but could not be loaded" in load[0].message
    assert "test" in report.stats  # the split that loads is still checked
    # The named split itself: the check raises, the CLI says so and exits 1.
    with pytest.raises(DataError, match=match):
        check("cifar10", root=str(cifar), split="train")


def test_cli_corrupt_split_fails_without_traceback(cifar: Path, tmp_path: Path) -> None:
    path = _batch(cifar)
    path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "report.json"
    r = _cli("cifar10", "--root", str(cifar), "--json", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "cifar10: failed" in r.stdout and "passed" not in r.stdout
    doc = json.loads(out.read_text())
    assert doc["ok"] is False
    assert any(i["check"] == "load" and i["split"] == "train" for i in doc["issues"])
    r = _cli("cifar10", "--root", str(cifar), "--split", "train")
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    assert "could not check" in r.stdout


def test_absent_split_is_not_an_error(tmp_path: Path, formats) -> None:
    x, y = formats.random_cifar(20, 10, 2)
    files = formats.cifar10_files((x, np.arange(20) % 10), (x, np.arange(20) % 10))
    files = {k: v for k, v in files.items() if "data_batch" not in k}  # only the test split
    formats.write_files(files, tmp_path)
    report = check("cifar10", root=str(tmp_path))
    assert report.ok, report.to_json()
    assert any(i.level == "info" and "'train' not checked" in i.message for i in report.issues)
    r = _cli("cifar10", "--root", str(tmp_path))
    assert r.returncode == 0 and "cifar10: passed" in r.stdout, r.stdout + r.stderr


def test_cli_nan_ground_truth_box_fails(tmp_path: Path, formats) -> None:
    gt = formats.coco_fixture(tmp_path)
    gt["annotations"][0]["bbox"][1] = float("nan")
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    r = _cli("coco", "--root", str(tmp_path), "--split", "val")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "could not check" in r.stdout and "bbox" in r.stdout and "passed" not in r.stdout
    formats.coco_fixture(tmp_path, split="train")
    r = _cli("coco", "--root", str(tmp_path))
    assert r.returncode == 1 and "coco: failed" in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_split_that_fails_midway_is_an_error() -> None:
    from dlbench.data import register
    from dlbench.data.dataset import Batch, Dataset, DatasetInfo
    from dlbench.registry import datasets as registry

    class Flaky(Dataset):
        def __init__(self, root=None, split="test") -> None:
            self.split = split

        @property
        def info(self) -> DatasetInfo:
            return DatasetInfo(
                "flaky", "classification", self.split, (1, 2, 2), 2, num_samples=4, source="-"
            )

        def __len__(self) -> int:
            return 4

        def get_batch(self, indices) -> Batch:
            if self.split == "train":
                raise DataError("sample 3: expected a readable image. Received a corrupt one")
            idx = np.asarray(indices)
            return Batch(np.zeros((len(idx), 1, 2, 2), np.float32), idx % 2, idx)

    register("flaky-test-dataset", Flaky)
    try:
        report = check("flaky-test-dataset")
    finally:
        registry.unregister("flaky-test-dataset")
    assert not report.ok
    (err,) = [i for i in report.errors if i.check == "load"]
    assert err.split == "train" and "could not be read to the end" in err.message
    assert "test" in report.stats
