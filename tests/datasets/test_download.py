"""download=True against a local HTTP server: cache, checksum, cut connections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets
from dlbench.adapters.datasets import _download
from dlbench.data.cache import cache_dir, cache_root
from dlbench.errors import ChecksumError, DataError

PATH = "/kriz/cifar-10-python.tar.gz"


@pytest.fixture
def served(tmp_path: Path, formats, http_server):
    train, test = formats.random_cifar(25, 10, 5), formats.random_cifar(10, 10, 6)
    archive = formats.write_targz(
        formats.cifar10_files(train, test), tmp_path / "src" / "cifar-10-python.tar.gz"
    )
    http_server.routes[PATH] = archive.read_bytes()
    return http_server, archive, train, test


def test_download_into_cache_then_reuse(served, formats, _isolated_cache: Path) -> None:
    server, archive, train, test = served
    url, md5 = server.url(PATH), formats.md5(archive)
    ds = datasets.load("cifar10", split="test", download=True, url=url, md5=md5)
    assert cache_root() == _isolated_cache
    assert (cache_dir("cifar10") / "cifar-10-batches-py" / "test_batch").is_file()
    assert not list(cache_dir("cifar10").glob("*.part"))
    np.testing.assert_array_equal(ds.raw()[0], test[0])
    np.testing.assert_array_equal(ds.raw()[1], test[1])
    # second load: from the cache, no request
    tr = datasets.load("cifar10", split="train", download=True, url=url, md5=md5)
    np.testing.assert_array_equal(tr.raw()[0], train[0])
    assert server.requests == [PATH]


def test_download_into_root(served, formats, tmp_path: Path) -> None:
    server, archive, _, test = served
    root = tmp_path / "data"
    ds = datasets.load(
        "cifar10", root=str(root), download=True, url=server.url(PATH), md5=formats.md5(archive)
    )
    assert (root / "cifar-10-python.tar.gz").is_file()
    np.testing.assert_array_equal(ds.raw()[0], test[0])


def test_wrong_checksum_is_refused(served, tmp_path: Path) -> None:
    server, archive, _, _ = served
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as e:
        datasets.load("cifar10", root=str(root), download=True, url=server.url(PATH), md5="0" * 32)
    msg = str(e.value)
    assert "expected md5 " + "0" * 32 in msg and "cifar-10-python.tar.gz" in msg
    assert not root.exists() or not any(root.iterdir())  # nothing kept


def test_official_checksum_by_default(served, tmp_path: Path) -> None:
    server, _, _, _ = served
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        datasets.load("cifar10", root=str(tmp_path / "d"), download=True, url=server.url(PATH))


def test_sha256_checked_too(served, formats, tmp_path: Path) -> None:
    server, archive, _, _ = served
    with pytest.raises(ChecksumError, match="sha256"):
        datasets.load(
            "cifar10",
            root=str(tmp_path / "d"),
            download=True,
            url=server.url(PATH),
            md5=formats.md5(archive),
            sha256="f" * 64,
        )


def test_cut_connection(served, formats, tmp_path: Path) -> None:
    server, archive, _, _ = served
    server.truncate[PATH] = archive.stat().st_size // 3
    root = tmp_path / "d"
    with pytest.raises(DataError) as e:
        datasets.load("cifar10", root=str(root), download=True, url=server.url(PATH), md5=None)
    assert PATH in str(e.value)
    assert not (root / "cifar-10-python.tar.gz").exists()


def test_truncated_archive_served_whole(served, formats, tmp_path: Path) -> None:
    """The server sends a complete response of a truncated file."""
    server, archive, _, _ = served
    data = archive.read_bytes()
    server.routes[PATH] = data[: len(data) // 2]
    root = tmp_path / "d"
    with pytest.raises(ChecksumError):  # with the checksum known: refused before extraction
        datasets.load(
            "cifar10", root=str(root), download=True, url=server.url(PATH), md5=formats.md5(archive)
        )
    with pytest.raises(DataError, match="truncated or corrupt") as e:  # without: at extraction
        datasets.load("cifar10", root=str(root), download=True, url=server.url(PATH), md5=None)
    assert "cifar-10-python.tar.gz" in str(e.value)
    assert not (root / "cifar-10-batches-py").exists()


def test_http_error(http_server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="404"):
        _download.download(http_server.url("/missing"), tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists()


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path / "c"))
    assert cache_dir("coco") == tmp_path / "c" / "coco"
    monkeypatch.delenv("DLBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "dlbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "dlbench"
