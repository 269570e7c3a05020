"""Malicious pickles and archives are refused with errors naming the file."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets
from dlbench.adapters.datasets import _archive
from dlbench.adapters.datasets._unpickle import safe_load
from dlbench.errors import DataError, UnsafeDataError


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path, formats) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    x, y = formats.random_cifar(4, 10, 0)
    formats.write_files(formats.cifar10_files((x, y), (x, y)), tmp_path)
    evil = pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}, protocol=2)
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(UnsafeDataError) as e:
        datasets.load("cifar10", root=str(tmp_path), split="test")
    assert "test_batch" in str(e.value) and "system" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cos\nsystem\n(S'true'\ntR.",
        b"c__builtin__\ngetattr\n(cnumpy\nndarray\nS'tofile'\ntR.",
        b"cnumpy\nload\n(S'x'\ntR.",
    ],
)
def test_unpickler_refuses_other_globals(payload: bytes) -> None:
    with pytest.raises(UnsafeDataError, match="Refused to unpickle evil.pkl"):
        safe_load(payload, name="evil.pkl")


def test_unpickler_refuses_object_arrays() -> None:
    raw = pickle.dumps(np.array([1, "a"], dtype=object), protocol=2)
    with pytest.raises(UnsafeDataError, match="object dtype"):
        safe_load(raw, name="obj.pkl")


def test_unpickler_accepts_python3_protocol2_bytes() -> None:
    obj = {b"data": np.arange(6, dtype=np.uint8), b"labels": [1, 2], "name": "x"}
    out = safe_load(pickle.dumps(obj, protocol=2))  # bytes go through _codecs.encode
    np.testing.assert_array_equal(out[b"data"], obj[b"data"])
    assert out[b"labels"] == [1, 2] and out["name"] == "x"
    with pytest.raises(UnsafeDataError, match="encoding"):
        safe_load(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")


def test_truncated_pickle_is_a_data_error(tmp_path: Path, formats) -> None:
    raw = formats.py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    path = tmp_path / "batch"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=f"{path}.*truncated"):
        safe_load(path)


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("cifar-10-batches-py/readme.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"hi"))
        member.size = len(data) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = linkname
    return m


@pytest.mark.parametrize(
    ("member", "data", "match"),
    [
        (_member("../x"), b"owned", r"'\.\./x'.*traversal"),
        (_member("cifar-10-batches-py/../../x"), b"owned", "traversal"),
        (_member("/tmp/abs_x"), b"owned", "absolute"),
        (_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "/etc/passwd"), b"", "symbolic"),
        (_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "/etc/passwd"), b"", "hard"),
        (_member("cifar-10-batches-py/dev", tarfile.CHRTYPE), b"", "device"),
        (_member("cifar-10-batches-py/fifo", tarfile.FIFOTYPE), b"", "FIFO"),
    ],
)
def test_unsafe_archive_members(tmp_path: Path, member, data, match: str) -> None:
    archive = _tar_with(tmp_path / "evil.tar.gz", member, data)
    dest = tmp_path / "out" / "deeper"
    with pytest.raises(UnsafeDataError, match=match) as e:
        _archive.extract(archive, dest)
    assert str(archive) in str(e.value)
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "x").exists()
    assert not (dest / "cifar-10-batches-py").exists()  # nothing half-extracted
    # the same archive given directly to the loader is refused too
    with pytest.raises(UnsafeDataError):
        datasets.load("cifar10", root=str(archive), md5=None)


def test_zip_traversal_and_symlink(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../x", b"owned")
    with pytest.raises(UnsafeDataError, match="traversal"):
        _archive.extract(evil, tmp_path / "out")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("a/link")
        info.external_attr = (0o120777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeDataError, match="symbolic"):
        _archive.extract(link, tmp_path / "out")


def test_truncated_targz_names_the_file(tmp_path: Path, formats) -> None:
    x, y = formats.random_cifar(20, 10, 0)
    archive = formats.write_targz(
        formats.cifar10_files((x, y), (x, y)), tmp_path / "cifar-10-python.tar.gz"
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        datasets.load("cifar10", root=str(archive), md5=None)
    assert str(archive) in str(e.value)
    with pytest.raises(DataError, match=str(archive)):
        _archive.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "cifar-10-batches-py").exists()


def test_safe_extract_writes_plain_files(tmp_path: Path, formats) -> None:
    files = {"top/a.txt": b"a", "top/sub/b.bin": b"\x00\x01"}
    archive = formats.write_targz(files, tmp_path / "ok.tar.gz")
    dest = _archive.extract(archive, tmp_path / "out")
    assert (dest / "top" / "a.txt").read_bytes() == b"a"
    assert (dest / "top" / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert [p.name for p in dest.iterdir()] == ["top"]  # no temporary folder left


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_mapped_file_and_bytes_load_the_same(tmp_path, protocol) -> None:
    """A path is read through a memory map (zero-copy reads, text opcodes via readline);
    the result must equal loading the same bytes, for every protocol the format allows."""
    import pickle

    from dlbench.adapters.datasets._unpickle import safe_load

    obj = {
        b"labels": list(range(300)),
        "text": "line\nbreak",
        b"data": np.arange(70_000, dtype=np.uint8),
    }
    data = pickle.dumps(obj, protocol=protocol)
    path = tmp_path / "batch"
    path.write_bytes(data)
    a, b = safe_load(path), safe_load(data)
    assert a[b"labels"] == b[b"labels"] == obj[b"labels"] and a["text"] == obj["text"]
    np.testing.assert_array_equal(a[b"data"], obj[b"data"])
    np.testing.assert_array_equal(b[b"data"], obj[b"data"])
    path.write_bytes(data[: len(data) // 2])  # truncated inside the array's bytes
    with pytest.raises(DataError, match="truncated"):
        safe_load(path)
