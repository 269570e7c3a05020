"""CIFAR-10/100 in both official formats, from folders, archives and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets
from dlbench.adapters.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD
from dlbench.errors import ChecksumError, ConfigError, DataError

ARCHIVE = {"python": "cifar-10-python.tar.gz", "binary": "cifar-10-binary.tar.gz"}
ARCHIVE100 = {"python": "cifar-100-python.tar.gz", "binary": "cifar-100-binary.tar.gz"}
FOLDER = {"python": "cifar-10-batches-py", "binary": "cifar-10-batches-bin"}
FOLDER100 = {"python": "cifar-100-python", "binary": "cifar-100-binary"}


@pytest.fixture
def cifar10_data(formats):
    return formats.random_cifar(35, 10, seed=1), formats.random_cifar(12, 10, seed=2)


@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("where", ["folder", "parent", "archive", "archive_parent"])
def test_cifar10_roundtrip(tmp_path: Path, formats, cifar10_data, fmt: str, where: str) -> None:
    train, test = cifar10_data
    files = formats.cifar10_files(train, test, fmt=fmt)
    if where.startswith("archive"):
        archive = formats.write_targz(files, tmp_path / ARCHIVE[fmt])
        root = archive if where == "archive" else tmp_path
    else:
        formats.write_files(files, tmp_path)
        root = tmp_path / FOLDER[fmt] if where == "folder" else tmp_path
    for split, (x, y) in (("train", train), ("test", test)):
        ds = datasets.load("cifar10", root=str(root), split=split, md5=None)
        images, labels = ds.raw()
        assert images.dtype == np.uint8 and images.shape == (len(x), 3, 32, 32)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y)
        assert ds.format == fmt
        assert ds.info.class_names == tuple(formats.CIFAR10_NAMES)
        assert ds.info.num_samples == len(x) and ds.info.input_shape == (3, 32, 32)
        assert not images.flags.writeable


def test_cifar10_batches_are_normalised(tmp_path: Path, formats, cifar10_data) -> None:
    formats.write_files(formats.cifar10_files(*cifar10_data), tmp_path)
    ds = datasets.load("cifar10", root=str(tmp_path), split="test")
    batch = ds.get_batch([3, 0, 5])
    x, _ = ds.raw()
    mean = np.asarray(CIFAR10_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR10_STD, np.float32).reshape(1, 3, 1, 1)
    expected = (x[[3, 0, 5]].astype(np.float32) / 255.0 - mean) / std
    assert batch.inputs.dtype == np.float32 and batch.inputs.flags.c_contiguous
    np.testing.assert_allclose(batch.inputs, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batch.targets, ds.raw()[1][[3, 0, 5]])
    assert ds.info.transform["mean"] == list(CIFAR10_MEAN)
    unnorm = datasets.load("cifar10", root=str(tmp_path), split="test", normalize=False)
    np.testing.assert_allclose(unnorm.get_batch([0]).inputs, x[:1] / np.float32(255), rtol=1e-6)


def test_numpy2_module_name_is_accepted(tmp_path: Path, formats, cifar10_data) -> None:
    files = formats.cifar10_files(*cifar10_data, numpy_module="numpy._core.multiarray")
    assert b"numpy._core.multiarray" in files["cifar-10-batches-py/test_batch"]
    formats.write_files(files, tmp_path)
    ds = datasets.load("cifar10", root=str(tmp_path), split="test")
    np.testing.assert_array_equal(ds.raw()[0], cifar10_data[1][0])


def test_real_pickles_name_numpy_core(formats, cifar10_data) -> None:
    files = formats.cifar10_files(*cifar10_data)
    raw = files["cifar-10-batches-py/data_batch_1"]
    assert raw.startswith(b"\x80\x02")  # protocol 2
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    assert b"U\x04data" in raw  # b"data" written as a Python 2 str


@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar100_roundtrip(tmp_path: Path, formats, fmt: str, as_archive: bool) -> None:
    rng = np.random.default_rng(3)
    splits = {}
    for split, n in (("train", 30), ("test", 10)):
        x, fine = formats.random_cifar(n, 100, seed=n)
        splits[split] = (x, fine, rng.integers(0, 20, n).astype(np.int64))
    files = formats.cifar100_files(splits["train"], splits["test"], fmt=fmt)
    if as_archive:
        root = formats.write_targz(files, tmp_path / ARCHIVE100[fmt])
    else:
        root = formats.write_files(files, tmp_path) / FOLDER100[fmt]
    for split, (x, fine, coarse) in splits.items():
        ds = datasets.load("cifar100", root=str(root), split=split, md5=None)
        images, labels = ds.raw()
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, fine)
        np.testing.assert_array_equal(ds.fine_labels, fine)
        np.testing.assert_array_equal(ds.coarse_labels, coarse)
        assert ds.info.num_classes == 100 and ds.info.class_names[7] == "fine_07"
        assert ds.coarse_class_names[3] == "coarse_03"
        c = datasets.load("cifar100", root=str(root), split=split, md5=None, label_mode="coarse")
        np.testing.assert_array_equal(c.raw()[1], coarse)
        assert c.info.num_classes == 20


def test_local_archive_checked_against_official_md5(tmp_path: Path, formats, cifar10_data) -> None:
    archive = formats.write_targz(
        formats.cifar10_files(*cifar10_data), tmp_path / ARCHIVE["python"]
    )
    with pytest.raises(ChecksumError) as e:
        datasets.load("cifar10", root=str(archive))
    msg = str(e.value)
    assert "c58f30108f718f92721af3b95e74349a" in msg and formats.md5(archive) in msg
    assert str(archive) in msg and "md5=" in msg
    ds = datasets.load("cifar10", root=str(archive), md5=formats.md5(archive))
    assert len(ds) == 12
    with pytest.raises(ChecksumError):
        datasets.load("cifar10", root=str(archive), md5="0" * 32)


def test_missing_dataset_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="download=True"):
        datasets.load("cifar10", root=str(tmp_path))
    with pytest.raises(DataError, match="download=True"):
        datasets.load("cifar10")  # default: the (empty, isolated) cache


def test_incomplete_folder_names_missing_file(tmp_path: Path, formats, cifar10_data) -> None:
    formats.write_files(formats.cifar10_files(*cifar10_data), tmp_path)
    (tmp_path / FOLDER["python"] / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        datasets.load("cifar10", root=str(tmp_path), split="train")


def test_truncated_binary_batch(tmp_path: Path, formats, cifar10_data) -> None:
    formats.write_files(formats.cifar10_files(*cifar10_data, fmt="binary"), tmp_path)
    path = tmp_path / FOLDER["binary"] / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="test_batch.bin.*truncated"):
        datasets.load("cifar10", root=str(tmp_path), split="test")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split"):
        datasets.load("cifar10", root=str(tmp_path), split="val")
    with pytest.raises(ConfigError, match="format"):
        datasets.load("cifar10", root=str(tmp_path), format="jpeg")
    with pytest.raises(ConfigError, match="label_mode"):
        datasets.load("cifar100", root=str(tmp_path), label_mode="medium")


def test_batches_iterate_whole_split(tmp_path: Path, formats, cifar10_data) -> None:
    formats.write_files(formats.cifar10_files(*cifar10_data), tmp_path)
    ds = datasets.load("cifar10", root=str(tmp_path), split="train")
    seen = np.concatenate([b.targets for b in ds.batches(8)])
    np.testing.assert_array_equal(seen, cifar10_data[0][1])


@pytest.mark.parametrize(
    "sizes", [(5, 5, 5, 4, 4), (2, 5, 5, 5, 5), (3, 9, 1, 4, 4), (4, 4, 4, 4, 9)]
)
def test_python_batches_of_unequal_sizes_load_in_order(tmp_path: Path, formats, sizes) -> None:
    """Each batch is copied into place as it is parsed; batches smaller or larger than the
    first (user-made files) must still come back complete and in file order."""
    x, y = formats.random_cifar(sum(sizes), 10, seed=7)
    files = formats.cifar10_files((x, y), formats.random_cifar(4, 10, seed=8))
    folder = "cifar-10-batches-py/"
    bounds = np.cumsum((0, *sizes))
    for i in range(5):
        sl = slice(bounds[i], bounds[i + 1])
        files[folder + f"data_batch_{i + 1}"] = formats._cifar_batch(
            f"training batch {i + 1} of 5", x[sl], {b"labels": y[sl]}, "numpy.core.multiarray"
        )
    formats.write_files(files, tmp_path)
    images, labels = datasets.load("cifar10", root=str(tmp_path), split="train", md5=None).raw()
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)
