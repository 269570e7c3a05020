"""Hostile dataset files end in a DataError saying what was expected, never a traceback, and no
loader allocates more than a documented multiple of what the file's format needs."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlbench import datasets
from dlbench.adapters.datasets import _archive, _image, _unpickle
from dlbench.adapters.datasets._unpickle import safe_load
from dlbench.errors import DataError, UnsafeDataError


def _cifar(tmp_path: Path, formats) -> Path:
    x, y = formats.random_cifar(10, 10, 0)
    formats.write_files(formats.cifar10_files((x, y), (x, y)), tmp_path)
    return tmp_path / "cifar-10-batches-py"


# ----------------------------------------------------------------------------- pickles


def _deep_tuple_with_array(depth: int) -> bytes:
    arr = pickle.dumps(np.zeros(3, np.uint8), protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02" + b"(" * depth + arr + b"t" * depth + b"."


def test_deeply_nested_pickle_is_a_data_error(tmp_path: Path, formats) -> None:
    with pytest.raises(DataError, match="nested deeper than Python's recursion limit"):
        safe_load(_deep_tuple_with_array(100_000))
    folder = _cifar(tmp_path, formats)
    (folder / "test_batch").write_bytes(_deep_tuple_with_array(100_000))
    with pytest.raises(DataError, match="test_batch.*recursion limit"):
        datasets.load("cifar10", root=str(tmp_path), split="test")


class _Alloc:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __reduce__(self):
        return (np.ndarray, (self.shape, np.dtype("u1")))


def test_pickle_declaring_an_absurd_array_is_refused_before_allocating() -> None:
    data = pickle.dumps({b"data": _Alloc((1 << 40,))}, protocol=2)
    with pytest.raises(DataError, match=r"1,099,511,627,776 bytes.*2x the pickle's") as e:
        safe_load(data)
    assert not isinstance(e.value, UnsafeDataError)  # a resource limit, not code
    # Many small allocations add up against the same budget.
    many = pickle.dumps([_Alloc((1 << 19,)) for _ in range(8)], protocol=2)
    with pytest.raises(DataError, match="at most 1,048,576 bytes"):
        safe_load(many)
    # Within the budget the allowed constructor still works (zero-filled, never raw memory).
    small = safe_load(pickle.dumps({b"x": _Alloc((10,))}, protocol=2))
    assert small[b"x"].tolist() == [0] * 10


def test_pickle_budget_scales_with_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_unpickle, "_MIN_ALLOC_LIMIT", 0)
    data = pickle.dumps([_Alloc((100,)), b"\0" * 100], protocol=2)
    assert len(data) < 300
    safe_load(data)  # 100 bytes <= 2 x ~250 bytes
    big = pickle.dumps([_Alloc((1000,)), b"\0" * 100], protocol=2)
    with pytest.raises(DataError, match=r"2x the pickle's \d+ bytes"):
        safe_load(big)


def test_newobj_on_ndarray_is_refused() -> None:
    # NEWOBJ would call numpy.ndarray.__new__ directly; the guard is not a type.
    payload = b"\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85\x81."
    with pytest.raises(DataError):
        safe_load(payload)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([0.5] * 10, "integer b'labels'.*float64"),
        ([[1, [2]]] * 10, "integer b'labels'"),
        ([f"label {i}" for i in range(10)], "integer b'labels'"),
    ],
)
def test_cifar_labels_of_the_wrong_type(tmp_path: Path, formats, labels, match: str) -> None:
    folder = _cifar(tmp_path, formats)
    x, _ = formats.random_cifar(10, 10, 0)
    batch = {b"data": np.ascontiguousarray(x.reshape(10, 3072)), b"labels": labels}
    (folder / "test_batch").write_bytes(formats.py2_pickle(batch))
    with pytest.raises(DataError, match=match):
        datasets.load("cifar10", root=str(tmp_path), split="test")


# ----------------------------------------------------------------------------- archives


def _tar_gz_declaring(path: Path, name: str, size: int) -> Path:
    info = tarfile.TarInfo(name)
    info.size = size
    path.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096))
    return path


def test_archive_member_declaring_many_gib_is_refused(tmp_path: Path) -> None:
    bomb = _tar_gz_declaring(tmp_path / "bomb.tar.gz", "cifar-10-batches-py/test_batch", 20 << 30)
    for call in (
        lambda: _archive.read_members(bomb, lambda n: True),
        lambda: _archive.extract(bomb, tmp_path / "out"),
        lambda: datasets.load("cifar10", root=str(bomb), split="test", md5=None),
    ):
        with pytest.raises(DataError, match=r"21,474,836,480 bytes.*100x the archive's") as e:
            call()
        assert "decompression bomb" in str(e.value)
    assert not any((tmp_path / "out").rglob("test_batch"))


def test_zip_bomb_is_refused_by_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_archive, "MIN_EXPANSION_LIMIT", 1 << 16)
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/zeros.bin", b"\0" * (4 << 20))  # 4 MiB of zeros -> about 4 KiB
    assert path.stat().st_size * 100 < 4 << 20
    with pytest.raises(DataError, match="decompression bomb"):
        _archive.read_members(path, lambda n: True)
    # An ordinary archive is read as before.
    ok = tmp_path / "ok.zip"
    with zipfile.ZipFile(ok, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/x.bin", np.random.default_rng(0).bytes(50_000))
    assert list(_archive.read_members(ok, lambda n: True)) == ["a/x.bin"]


# ----------------------------------------------------------------------------- images


def _png_declaring(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows only
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_png_declaring_30000x30000_pixels(tmp_path: Path) -> None:
    bomb = _png_declaring(tmp_path / "bomb.png", 30000, 30000)
    for call in (_image.open_rgb, _image.decode_rgb, _image.verify_image, _image.image_size):
        with pytest.raises(DataError, match="bomb.png") as e:
            call(bomb)
        assert "pixels" in str(e.value)


def test_pixel_limit_applies_below_pillows_bomb_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, formats
) -> None:
    monkeypatch.setattr(_image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(DataError, match=r"declares 20x20 = 400 pixels.*at most 100"):
        _image.open_rgb(path)
    # Through a dataset: the image folder refuses it when the batch is read.
    formats.imagefolder_fixture(tmp_path / "imgs" / "val", ["a", "b"], 2)
    ds = datasets.load("imagefolder", root=str(tmp_path / "imgs"), split="val", download=False)
    with pytest.raises(DataError, match="pixels"):
        ds.get_batch([0])


def test_coco_image_header_must_match_the_json_before_decoding(tmp_path: Path, formats) -> None:
    gt = formats.coco_fixture(tmp_path)
    name = gt["images"][0]["file_name"]
    _png_declaring(tmp_path / "val2017" / name, 30000, 30000)
    ds = datasets.load("coco", root=str(tmp_path), image_size=32)
    with pytest.raises(DataError, match=name):
        ds.get_batch([0])
    ds.get_batch([1])


def test_archive_and_pickle_security_guarantees_still_hold(tmp_path: Path) -> None:
    with pytest.raises(UnsafeDataError):
        safe_load(b"cos\nsystem\n(S'true'\ntR.")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "t.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeDataError, match=r"'\.\.'"):
        _archive.extract(tmp_path / "t.tar.gz", tmp_path / "o")


def test_text_that_is_not_utf8(tmp_path: Path, formats) -> None:
    folder = _cifar(tmp_path, formats)
    meta = {b"label_names": [b"\xff\xfe" for _ in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(formats.py2_pickle(meta))
    with pytest.raises(DataError, match="batches.meta.*UTF-8"):
        datasets.load("cifar10", root=str(tmp_path), split="test")
    imgs = tmp_path / "flat"
    imgs.mkdir()
    Image.new("RGB", (8, 8)).save(imgs / "a.png")
    (tmp_path / "labels.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="labels.txt: expected a UTF-8 text file"):
        datasets.load("imagefolder", root=str(imgs), labels_file=tmp_path / "labels.txt")
