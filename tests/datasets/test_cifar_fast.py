"""The lazy CIFAR path (safe_load_lazy): the pixels stay in the file until read once into place.

Every result is compared with :func:`safe_load` (the restricted unpickler) on the same bytes:
same keys in the same order, same labels and names, same pixels; every hostile file gets the same
error (class and message) as from :func:`safe_load`.
"""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlbench import datasets
from dlbench.adapters.datasets import _unpickle
from dlbench.adapters.datasets._unpickle import ArraySpan, safe_load, safe_load_lazy
from dlbench.errors import DataError, UnsafeDataError

PIXELS = 3072
LAZY_N = _unpickle.LAZY_MIN_BYTES // PIXELS + 1  # the fewest images whose pixels stay lazy


def _batch(formats, n: int, seed: int, order: tuple[bytes, ...] | None = None, **kw) -> bytes:
    """A CIFAR-10 batch as Python 2 wrote it; ``order`` reorders the dict's keys."""
    x, y = formats.random_cifar(n, 10, seed=seed)
    raw = formats._cifar_batch("training batch 1 of 5", x, {b"labels": y}, "numpy.core.multiarray")
    if order is None and not kw:
        return raw
    d = safe_load(raw)
    d.update(kw)
    d = {k: d[k] for k in (order or d)}
    d[b"data"] = np.asarray(d[b"data"])  # a real ndarray again, pickled as numpy does
    return formats.py2_pickle(d)


def _same(lazy: Any, plain: Any) -> None:
    """``lazy`` equals ``plain`` with ArraySpans read into arrays."""
    if isinstance(lazy, ArraySpan):
        lazy = lazy.load()
    if isinstance(plain, np.ndarray):
        assert isinstance(lazy, np.ndarray)
        assert lazy.dtype == plain.dtype and lazy.shape == plain.shape
        np.testing.assert_array_equal(lazy, plain)
        return
    assert type(lazy) is type(plain)
    if isinstance(plain, dict):
        assert list(lazy) == list(plain)  # same keys, same order
        for k in plain:
            _same(lazy[k], plain[k])
    elif isinstance(plain, (list, tuple)):
        assert len(lazy) == len(plain)
        for a, b in zip(lazy, plain, strict=True):
            _same(a, b)
    else:
        assert lazy == plain


def _error(load, source) -> tuple[type, str]:
    with pytest.raises(DataError) as e:
        load(source)
    return type(e.value), str(e.value)


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (LAZY_N - 1, 1), (LAZY_N, 2), (700, 3)])
def test_lazy_batch_equals_the_restricted_unpickler(tmp_path: Path, formats, n, seed) -> None:
    raw = _batch(formats, n, seed)
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    plain = safe_load(path)
    for source in (path, raw):
        lazy = safe_load_lazy(source)
        # at least LAZY_MIN_BYTES of pixels: left in the file; fewer: an array as before
        assert isinstance(lazy[b"data"], ArraySpan) == (n >= LAZY_N)
        _same(lazy, plain)
    x, y = formats.random_cifar(n, 10, seed=seed)
    np.testing.assert_array_equal(_as_array(safe_load_lazy(path)[b"data"]), x.reshape(n, -1))
    assert safe_load_lazy(path)[b"labels"] == y.tolist()


def _as_array(v: Any) -> np.ndarray:
    return v.load() if isinstance(v, ArraySpan) else v


@pytest.mark.parametrize(
    "order",
    [
        (b"data", b"labels", b"filenames", b"batch_label"),
        (b"filenames", b"batch_label", b"data", b"labels"),
        (b"labels", b"filenames", b"batch_label", b"data"),
    ],
)
def test_keys_in_another_order(tmp_path: Path, formats, order) -> None:
    raw = _batch(formats, LAZY_N + 5, 4, order)
    lazy, plain = safe_load_lazy(raw), safe_load(raw)
    assert isinstance(lazy[b"data"], ArraySpan) and list(lazy) == list(order)
    _same(lazy, plain)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_load_as_before(formats, protocol: int) -> None:
    """Python 3 writes bytes as _codecs.encode(str, 'latin1') at protocol 2 and BINBYTES above;
    numpy 2 names numpy._core: none of that is a BINSTRING, so the plain path loads it."""
    x, y = formats.random_cifar(LAZY_N + 3, 10, seed=5)
    d = {b"batch_label": b"b", b"labels": y.tolist(), b"data": x.reshape(len(x), -1)}
    d[b"filenames"] = [f"{i}.png".encode() for i in range(len(x))]
    raw = pickle.dumps(d, protocol=protocol)
    if protocol == 5:  # numpy pickles arrays through numpy._core.numeric._frombuffer there
        got = _error(safe_load_lazy, raw)
        assert got == _error(safe_load, raw) and got[0] is UnsafeDataError
        return
    lazy, plain = safe_load_lazy(raw), safe_load(raw)
    assert isinstance(lazy[b"data"], np.ndarray)
    _same(lazy, plain)
    np.testing.assert_array_equal(lazy[b"data"], x.reshape(len(x), -1))


def test_numpy2_module_name_and_reversed_cifar100(formats) -> None:
    x, fine = formats.random_cifar(LAZY_N, 100, seed=6)
    coarse = fine % 20
    raw = formats._cifar_batch(
        "train", x, {b"fine_labels": fine, b"coarse_labels": coarse}, "numpy._core.multiarray"
    )
    assert b"numpy._core.multiarray" in raw
    lazy = safe_load_lazy(raw)
    assert isinstance(lazy[b"data"], ArraySpan)
    _same(lazy, safe_load(raw))


# ----------------------------------------------------------------------------- hostile files


def _payload(raw: bytes) -> tuple[int, int]:
    """(start, length) of the first long BINSTRING's payload."""
    length = len(raw) - 1
    while True:
        i = raw.rfind(b"T", 0, length)
        n = int.from_bytes(raw[i + 1 : i + 5], "little")
        if n >= _unpickle.LAZY_MIN_BYTES and i + 5 + n <= len(raw):
            return i + 5, n
        length = i


@pytest.mark.parametrize("cut", ["in_header", "before_data", "in_data", "after_data", "last_byte"])
def test_truncated_files_get_the_same_error(tmp_path: Path, formats, cut: str) -> None:
    raw = _batch(formats, LAZY_N + 1, 7)
    start, n = _payload(raw)
    at = {
        "in_header": 10,
        "before_data": start - 3,
        "in_data": start + n // 2,
        "after_data": start + n + 40,
        "last_byte": len(raw) - 1,
    }[cut]
    path = tmp_path / "batch"
    path.write_bytes(raw[:at])
    for source in (path, raw[:at]):
        got = _error(safe_load_lazy, source)
        assert got == _error(safe_load, source)
        assert got[0] is DataError and "truncated" in got[1]


@pytest.mark.parametrize("delta", [-1, 1, -PIXELS, 1 << 20])
def test_lying_length_gets_the_same_error(tmp_path: Path, formats, delta: int) -> None:
    raw = bytearray(_batch(formats, LAZY_N + 2, 8))
    start, n = _payload(bytes(raw))
    raw[start - 4 : start] = (n + delta).to_bytes(4, "little")
    raw = bytes(raw)
    path = tmp_path / "batch"
    path.write_bytes(raw)
    for source in (path, raw):
        got = _error(safe_load_lazy, source)
        assert got == _error(safe_load, source)
        assert got[0] is DataError


@pytest.mark.parametrize("where", ["before", "after"])
def test_forbidden_global_is_refused_the_same(formats, where: str) -> None:
    raw = _with_global(_batch(formats, LAZY_N, 9), where)
    got = _error(safe_load_lazy, raw)
    assert got == _error(safe_load, raw)
    assert got[0] is UnsafeDataError and "posix.system" in got[1]


def _with_global(raw: bytes, where: str) -> bytes:
    """Add ``b"evil": posix.system("true")`` to the pickled dict, first or last."""
    item = b"U\x04evilcposix\nsystem\n(U\x04truetR"
    if where == "after":  # the dict is alone on the stack before STOP
        return raw[:-1] + item + b"s."
    head = raw.index(b"}") + 1  # EMPTY_DICT, then its memo entry
    head += 2 if raw[head : head + 1] == b"q" else 0
    return raw[:head] + item + b"s" + raw[head:]


def test_persistent_ids_are_refused_the_same(formats) -> None:
    raw = _batch(formats, LAZY_N, 10)
    for pid in (b"U\x10" + bytes(16) + b"Q", b"NQ"):
        evil = raw[:-1] + b"U\x03pid" + pid + b"s."
        got = _error(safe_load_lazy, evil)
        assert got == _error(safe_load, evil)
        assert got[0] is UnsafeDataError and "persistent id" in got[1]


def _memo_index_after(raw: bytes, at: int) -> int:
    assert raw[at : at + 1] == b"q"
    return raw[at + 1]


@pytest.mark.parametrize("what", ["string", "state", "array"])
def test_data_referenced_twice_loads_as_before(formats, what: str) -> None:
    """A file that fetches the pixel string (or the array's state, or the array) again from
    the memo: the stand-in must not leak, so the plain path loads it, same result."""
    raw = _batch(formats, LAZY_N, 11)
    start, n = _payload(raw)
    if what == "string":
        idx = _memo_index_after(raw, start + n)
    elif what == "state":
        idx = _memo_index_after(raw, start + n + 3)  # TUPLE after the string's BINPUT
    else:
        head = raw.rindex(b"R", 0, raw.rindex(b"cnumpy\ndtype\n"))  # REDUCE of _reconstruct
        idx = _memo_index_after(raw, head + 1)
    twice = raw[:-1] + b"U\x05again" + b"h" + bytes([idx]) + b"s."
    plain = safe_load(twice)
    lazy = safe_load_lazy(twice)
    assert isinstance(lazy[b"data"], np.ndarray)  # loaded the plain way
    if what == "array":  # the plain path leaves a second reference to an array unresolved
        assert type(lazy[b"again"]) is type(plain[b"again"])
        lazy.pop(b"again"), plain.pop(b"again")
    _same(lazy, plain)


# ----------------------------------------------------------------------------- ArraySpan


def test_span_reads_into_place_and_checks_the_output(tmp_path: Path, formats) -> None:
    raw = _batch(formats, LAZY_N, 12)
    path = tmp_path / "batch"
    path.write_bytes(raw)
    span = safe_load_lazy(path)[b"data"]
    x, _ = formats.random_cifar(LAZY_N, 10, seed=12)
    out = np.zeros((LAZY_N + 2, PIXELS), np.uint8)
    span.read_into(out[1:-1])
    np.testing.assert_array_equal(out[1:-1], x.reshape(LAZY_N, -1))
    assert not out[0].any() and not out[-1].any()  # nothing written outside the slice
    with pytest.raises(ValueError, match="Expected a C-contiguous uint8 output"):
        span.read_into(out[:-1])
    with pytest.raises(ValueError, match="Expected a C-contiguous uint8 output"):
        span.read_into(np.zeros((LAZY_N, PIXELS), np.int16)[:, ::2])


def test_span_of_a_file_changed_after_parsing_is_an_error(tmp_path: Path, formats) -> None:
    path = tmp_path / "batch"
    path.write_bytes(_batch(formats, LAZY_N, 13))
    span = safe_load_lazy(path)[b"data"]
    path.write_bytes(_batch(formats, LAZY_N + 1, 14))
    with pytest.raises(DataError, match="changed between being parsed and being read"):
        span.load()


# ----------------------------------------------------------------------------- the loader


def _cifar10_tree(tmp_path: Path, formats, n: int, seed: int):
    train = formats.random_cifar(5 * n, 10, seed=seed)
    test = formats.random_cifar(n, 10, seed=seed + 1)
    files = formats.cifar10_files(train, test)
    return files, train, test


def _peak_over_output(root: Path, split: str) -> tuple[int, Any]:
    datasets.load("cifar10", root=str(root), split="test", md5=None)  # imports, untraced
    tracemalloc.start()
    try:
        ds = datasets.load("cifar10", root=str(root), split=split, md5=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - ds.raw()[0].nbytes, ds


@pytest.mark.parametrize("as_archive", [False, True])
def test_loader_reads_each_pixel_once_into_one_array(
    tmp_path: Path, formats, as_archive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train + test at the lazy size: right data, and the loader's peak memory is the output
    plus a small fraction of a batch; copying each batch's pixels through a bytes object, as
    the plain unpickler does, costs a whole batch more (checked: the measure tells them apart)."""
    files, (x, y), (xt, yt) = _cifar10_tree(tmp_path, formats, LAZY_N, 15)
    if as_archive:
        root = formats.write_targz(files, tmp_path / "cifar-10-python.tar.gz")
    else:
        root = formats.write_files(files, tmp_path)
    batch_bytes = LAZY_N * PIXELS
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        extra, ds = _peak_over_output(root, split)
        images, labels = ds.raw()
        np.testing.assert_array_equal(images, xs)
        np.testing.assert_array_equal(labels, ys)
        assert images.flags.c_contiguous and not images.flags.writeable
        if not as_archive:  # an archive's members are in memory anyway
            assert extra < batch_bytes // 4, (split, extra, batch_bytes)
    if not as_archive:
        from dlbench.adapters.datasets import cifar

        monkeypatch.setattr(cifar, "safe_load_lazy", safe_load)  # the plain path
        extra, ds = _peak_over_output(root, "train")
        np.testing.assert_array_equal(ds.raw()[0], x)
        assert extra >= batch_bytes


def test_loader_with_python3_resaved_batches(tmp_path: Path, formats) -> None:
    """Batches re-saved by Python 3 (no BINSTRING) still load, through the plain path."""
    files, (x, y), (xt, yt) = _cifar10_tree(tmp_path, formats, LAZY_N, 16)
    folder = "cifar-10-batches-py/"
    for name in list(files):
        if "batch" in name and not name.endswith("meta"):
            d = safe_load(files[name])
            d[b"data"] = np.array(d[b"data"])
            files[name] = pickle.dumps(d, protocol=2)
    files[folder + "data_batch_2"] = formats._cifar_batch(  # one batch in the original style
        "b2", x[LAZY_N : 2 * LAZY_N], {b"labels": y[LAZY_N : 2 * LAZY_N]}, "numpy.core.multiarray"
    )
    formats.write_files(files, tmp_path)
    images, labels = datasets.load("cifar10", root=str(tmp_path), split="train").raw()
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)


def test_loader_error_for_lazy_data_of_the_wrong_shape(tmp_path: Path, formats) -> None:
    files, _, _ = _cifar10_tree(tmp_path, formats, 2, 17)
    x = np.zeros((LAZY_N + 10, 3000), np.uint8)  # long enough to stay lazy, not 3072 wide
    d = {b"batch_label": b"t", b"labels": [0] * len(x), b"data": x}
    files["cifar-10-batches-py/test_batch"] = formats.py2_pickle(d)
    formats.write_files(files, tmp_path)
    assert isinstance(safe_load_lazy(files["cifar-10-batches-py/test_batch"])[b"data"], ArraySpan)
    with pytest.raises(DataError, match=r"uint8 array of shape \(N, 3072\). Received: uint8"):
        datasets.load("cifar10", root=str(tmp_path), split="test")


def test_long_string_that_is_not_an_array_loads_as_before(formats) -> None:
    """The stand-in is accepted only as an array's data: a long plain string stays bytes."""
    blob = bytes(range(256)) * (LAZY_N * PIXELS // 256 + 1)
    raw = formats.py2_pickle({b"blob": blob, b"data": np.zeros((2, PIXELS), np.uint8)})
    lazy = safe_load_lazy(raw)
    assert lazy[b"blob"] == blob
    _same(lazy, safe_load(raw))


@pytest.mark.parametrize("as_bytes", [False, True])
def test_span_read_in_parallel_pieces(
    tmp_path: Path, formats, monkeypatch: pytest.MonkeyPatch, as_bytes: bool
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(_unpickle, "READ_CHUNK", 100_003)  # pieces not aligned to anything
    raw = _batch(formats, LAZY_N, 18)
    path = tmp_path / "batch"
    path.write_bytes(raw)
    x, _ = formats.random_cifar(LAZY_N, 10, seed=18)
    span = safe_load_lazy(raw if as_bytes else path)[b"data"]
    with ThreadPoolExecutor(3) as pool:
        np.testing.assert_array_equal(span.load(pool), x.reshape(LAZY_N, -1))
        out = np.zeros((LAZY_N, PIXELS), np.uint8)
        futures = span.read_into(out, pool)
        assert len(futures) == -(-span.nbytes // 100_003)
        _unpickle.wait_all(futures)
        np.testing.assert_array_equal(out, x.reshape(LAZY_N, -1))
        if not as_bytes:  # a piece that fails is raised by wait_all
            path.write_bytes(raw + b"\0")
            with pytest.raises(DataError, match="changed between being parsed"):
                _unpickle.wait_all(span.read_into(out, pool))


def test_loader_in_small_pieces(tmp_path: Path, formats, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_unpickle, "READ_CHUNK", 65_537)
    files, (x, y), (xt, yt) = _cifar10_tree(tmp_path, formats, LAZY_N, 19)
    formats.write_files(files, tmp_path)
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        images, labels = datasets.load("cifar10", root=str(tmp_path), split=split).raw()
        np.testing.assert_array_equal(images, xs)
        np.testing.assert_array_equal(labels, ys)


def test_a_bad_batch_after_good_ones_names_itself(tmp_path: Path, formats) -> None:
    """Reads of the earlier batches are still running when batch 3 fails to parse: its error
    is the one raised."""
    files, _, _ = _cifar10_tree(tmp_path, formats, LAZY_N, 20)
    formats.write_files(files, tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match="data_batch_3.*truncated"):
        datasets.load("cifar10", root=str(tmp_path), split="train")
