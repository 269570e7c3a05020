"""A restricted unpickler for CIFAR's python batches.

CIFAR's python version is a set of Python 2 pickles. A pickle can name any importable callable
and call it while loading, so a tampered file could run code. :func:`safe_load` admits only the
globals a CIFAR batch needs (NumPy's array reconstruction, ``numpy.ndarray``, ``numpy.dtype``,
and ``_codecs.encode`` restricted to latin-1 for files re-saved by Python 3) and refuses
everything else with :class:`~dlbench.errors.UnsafeDataError`. Plain containers (dicts, lists,
tuples, bytes, str, ints, floats) need no globals. Object arrays are refused too, since they are
the one NumPy path back to arbitrary objects.

Arrays come back as read-only views of the bytes in the pickle (NumPy's own reconstruction
would copy them once more), and a file on disk is read through a memory map (the unpickler reads
views of the page cache instead of a private copy of the file): loading a 30 MB batch from a
path costs two copies less than ``pickle.load(open(path, "rb"))``.

:func:`safe_load_lazy` goes one step further for the big array of a CIFAR batch: its bytes are
not unpickled at all but left in the file, and the array comes back as an :class:`ArraySpan`
(shape, dtype, where its bytes lie) that the caller reads with one copy straight into its own
output (see :func:`safe_load_lazy` for how this stays under the same rules).

Resource limits: an array's bytes travel inside the pickle, so a real dataset pickle never
needs more array memory than its own size. A pickle that calls the allowed ``numpy.ndarray``
constructor directly (to allocate from a declared shape) may allocate at most
:data:`ALLOC_LIMIT_FACTOR` times the pickle's size in all; beyond that it is refused with a
:class:`~dlbench.errors.DataError` before anything is allocated. A pickle nested deeper than
Python's recursion limit is a :class:`~dlbench.errors.DataError`, not a ``RecursionError``.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import io
import math
import mmap
import os
import pickle
import sys
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dlbench.errors import DataError, UnsafeDataError

ALLOC_LIMIT_FACTOR = 2
"""Arrays a pickle allocates from declared shapes (direct ``numpy.ndarray(shape, dtype)``
calls) may total at most this many times the pickle's own size in bytes."""

_MIN_ALLOC_LIMIT = 1 << 20  # bytes: tiny pickles may still declare small arrays


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _Refused(f"an object dtype ({dtype}) is not allowed")
    return dtype


class _PendingArray:
    """Stands in for an ndarray while unpickling; its state (shape, dtype, raw bytes) becomes a
    read-only array viewing those bytes, without NumPy's copy in ``ndarray.__setstate__``."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        st = self.state
        if not isinstance(st, tuple) or len(st) not in (4, 5):
            raise _Refused(f"unexpected ndarray state {type(st).__name__}")
        shape, dtype, fortran, raw = st[-4:]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise _Refused(f"array dtype {dtype!r} is not allowed")
        spliced = isinstance(raw, _Splice)
        if not spliced and not isinstance(raw, (bytes, bytearray)):
            raise _Refused(f"array data of type {type(raw).__name__} is not allowed")
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"array shape {shape} has a negative dimension")
        count = math.prod(shape)
        nbytes = raw.nbytes if spliced else len(raw)
        if nbytes != count * dtype.itemsize:
            raise ValueError(
                f"array data holds {nbytes} bytes, expected {count * dtype.itemsize} for "
                f"shape {shape} and dtype {dtype}"
            )
        if spliced:
            raw.claims += 1
            return ArraySpan(raw.source, raw.offset, shape, dtype, bool(fortran), raw.stat)
        arr = np.frombuffer(raw, dtype=dtype, count=count)
        return arr.reshape(shape, order="F" if fortran else "C")


def _safe_reconstruct(cls: Any, shape: Any, typecode: Any) -> _PendingArray:
    if cls is not np.ndarray:
        raise _Refused(f"array reconstruction of {cls!r} is not allowed (only numpy.ndarray)")
    return _PendingArray()


def _resolve(obj: Any, pending: list[int]) -> Any:
    """Replace every _PendingArray inside dicts, lists and tuples by its array.

    ``pending[0]`` counts the stubs still to find, so the walk stops as soon as all are found
    (a CIFAR batch's arrays sit at the top level, next to lists of 10,000 labels).
    """
    if isinstance(obj, _PendingArray):
        pending[0] -= 1
        return obj.to_array()
    if pending[0] <= 0:
        return obj
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: not isinstance(kv[1], _PendingArray))
        for k, v in items:
            if pending[0] <= 0:
                break
            if isinstance(v, (_PendingArray, dict, list, tuple)):
                obj[k] = _resolve(v, pending)
        return obj
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if pending[0] <= 0:
                break
            if isinstance(v, (_PendingArray, dict, list, tuple)):
                obj[i] = _resolve(v, pending)
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(v, pending) for v in obj)
    return obj


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes at protocol 2 as _codecs.encode(str, "latin1").
    if codecs.lookup(encoding).name != "iso8859-1":
        raise _Refused(f"_codecs.encode with encoding {encoding!r} is not allowed (only latin1)")
    return text.encode("latin-1")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _Refused(Exception):
    """Internal: raised inside the unpickler, turned into UnsafeDataError with the file name."""


class _TooLarge(Exception):
    """Internal: a declared allocation over the limit, turned into DataError with the file name."""


class _NdarrayGuard:
    """Stands in for the global ``numpy.ndarray``.

    Passed to ``_reconstruct`` it means ``numpy.ndarray`` (the normal use); called directly it
    allocates a zero-filled array only within the unpickler's allocation budget.
    """

    def __init__(self, budget: int, size: int) -> None:
        self.budget = budget
        self.size = size
        self.used = 0

    def __call__(self, shape: Any = (), dtype: Any = float, *rest: Any) -> np.ndarray:
        if rest:
            raise _Refused("numpy.ndarray called with a buffer, offset or strides")
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise _Refused(f"numpy.ndarray called with the shape {shape!r}")
        dt = _safe_dtype(dtype)
        nbytes = math.prod(dims) * dt.itemsize
        if self.used + nbytes > self.budget:
            raise _TooLarge(
                f"it declares an array of shape {dims} and dtype {dt} ({nbytes:,} bytes). "
                f"Expected at most {self.budget:,} bytes of arrays from declared shapes in all: "
                f"{ALLOC_LIMIT_FACTOR}x the pickle's {self.size:,} bytes, at least 1 MiB (the "
                "array data of a dataset pickle is stored in the file itself)"
            )
        self.used += nbytes
        return np.zeros(dims, dtype=dt)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`.

    ``splice`` (internal, see :func:`safe_load_lazy`): the one persistent id this unpickler
    answers, once; every other persistent id is refused.
    """

    created = 0  # array stubs made by this unpickler

    def __init__(
        self,
        file: BinaryIO,
        *,
        size: int | None = None,
        splice: _Splice | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(file, **kw)
        size = _MIN_ALLOC_LIMIT if size is None else size
        budget = max(ALLOC_LIMIT_FACTOR * size, _MIN_ALLOC_LIMIT)
        self._ndarray = _NdarrayGuard(budget, size)
        self._splice = splice

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> _PendingArray:
        stub = _safe_reconstruct(np.ndarray if cls is self._ndarray else cls, shape, typecode)
        self.created += 1
        return stub

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = ALLOWED_GLOBALS[(module, name)]
            if found is np.ndarray:
                return self._ndarray
            return self._reconstruct if found is _safe_reconstruct else found
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise _Refused(
                f"it references the global {module}.{name}, which a dataset file has no reason "
                f"to use. Expected only: {allowed}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        splice, self._splice = self._splice, None  # answered at most once
        if splice is not None and isinstance(pid, bytes) and pid == splice.token:
            return splice
        raise _Refused(f"it uses a persistent id ({pid!r}), which is not allowed")


class _MappedReader:
    """A read-only file object over a memory map whose reads are zero-copy memoryviews.

    The C unpickler accepts any buffer from ``read``/``peek`` and copies out only what it keeps
    (a string's bytes), so nothing of the file is copied twice. ``readline`` serves the text
    opcodes of protocol 0 pickles.
    """

    __slots__ = ("_view", "_pos")

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def read(self, n: int = -1) -> memoryview:
        end = len(self._view) if n is None or n < 0 else min(self._pos + n, len(self._view))
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def peek(self, n: int = 1) -> memoryview:
        return self._view[self._pos : self._pos + max(n, 1)]

    def readinto(self, buf: Any) -> int:
        chunk = self.read(len(memoryview(buf)))
        memoryview(buf).cast("B")[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, limit: int = -1) -> memoryview:
        end = len(self._view) if limit is None or limit < 0 else self._pos + limit
        idx = bytes(self._view[self._pos : end]).find(b"\n")
        return self.read(end - self._pos if idx < 0 else idx + 1)


def _load_mapped(f: BinaryIO, label: str, size: int) -> Any:
    """Unpickle an open regular file through a read-only memory map (falls back to reading)."""
    try:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # empty file, a pipe, a file system without mmap
        return _load(f, label, size)
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    view = memoryview(mapped)
    try:
        return _load(_MappedReader(view), label, size)  # type: ignore[arg-type]
    finally:
        try:
            view.release()
            mapped.close()
        except BufferError:  # a slice is still held (e.g. by a traceback frame); GC closes it
            pass


def safe_load(source: str | Path | bytes | BinaryIO, *, name: str | None = None) -> Any:
    """Unpickle a dataset file with :class:`RestrictedUnpickler` (``encoding="bytes"``).

    Args:
        source: A path, the file's bytes, or an open binary file.
        name: The file's name for error messages (defaults to the path).

    Raises:
        UnsafeDataError: The pickle references anything outside :data:`ALLOWED_GLOBALS`.
        DataError: The file is not a readable pickle (truncated, corrupt, nested too deeply)
            or declares arrays beyond :data:`ALLOC_LIMIT_FACTOR` times its size.
    """
    if isinstance(source, (str, Path)):
        label = name or str(source)
        try:
            with open(source, "rb") as f:
                return _load_mapped(f, label, os.fstat(f.fileno()).st_size)
        except FileNotFoundError:
            raise DataError(f"Dataset file not found: {label}") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load(io.BytesIO(source), name or "<bytes>", len(source))
    try:
        size: int | None = os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        size = None
    return _load(source, name or getattr(source, "name", "<stream>"), size)


def _load(f: BinaryIO, label: str, size: int | None = None, splice: _Splice | None = None) -> Any:
    try:
        unpickler = RestrictedUnpickler(f, encoding="bytes", size=size, splice=splice)
        try:
            obj = unpickler.load()
            created = unpickler.created
        finally:
            unpickler.memo.clear()  # drop what the memo holds now (it may hold a bound method)
            del unpickler
        return _resolve(obj, [created])
    except _Refused as e:
        raise UnsafeDataError(f"Refused to unpickle {label}: {e}.") from None
    except _TooLarge as e:
        raise DataError(f"Refused to unpickle {label}: {e}.") from None
    except RecursionError:
        raise DataError(
            f"Could not unpickle {label}: it is nested deeper than Python's recursion limit "
            f"({sys.getrecursionlimit()}). Expected a CIFAR python batch (a flat dict of arrays "
            "and lists)."
        ) from None
    except MemoryError:
        raise DataError(
            f"Could not unpickle {label}: it needs more memory than is available. Expected a "
            "CIFAR python batch (tens of MB)."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(
            f"Could not unpickle {label}: expected a CIFAR python batch (a pickled dict), "
            f"received a corrupt or truncated file ({type(e).__name__}: {e})."
        ) from None


# ---------------------------------------------------------------------------- lazy arrays

LAZY_MIN_BYTES = 1 << 20
"""A pickled string at least this long (the pixel data of a CIFAR batch) is left in the file by
:func:`safe_load_lazy`."""

READ_CHUNK = 8 << 20
"""Bytes per piece when an :class:`ArraySpan` is read in parallel."""

_BINSTRING = ord("T")


def wait_all(futures: Iterable[Future]) -> None:
    """Wait for every future, then raise the first one's error (if any)."""
    futures = list(futures)
    concurrent.futures.wait(futures)
    for f in futures:
        f.result()


class ArraySpan:
    """An array whose bytes are left where they lie in the pickle, to be read with one copy.

    Attributes:
        shape, dtype, fortran: The array as the pickle declares it (already checked: ``nbytes``
            is exactly ``prod(shape) * dtype.itemsize``, the dtype holds no objects).
        offset, nbytes: Where the bytes lie in the source.
    """

    __slots__ = ("_source", "offset", "shape", "dtype", "fortran", "nbytes", "_stat")

    def __init__(
        self,
        source: Path | bytes | memoryview,
        offset: int,
        shape: tuple[int, ...],
        dtype: np.dtype,
        fortran: bool,
        stat: tuple[int, ...] | None,
    ) -> None:
        self._source = source
        self.offset = offset
        self.shape = shape
        self.dtype = dtype
        self.fortran = fortran
        self.nbytes = math.prod(shape) * dtype.itemsize
        self._stat = stat

    def __repr__(self) -> str:
        return (
            f"ArraySpan(shape={self.shape}, dtype={self.dtype}, offset={self.offset}, "
            f"source={self._label()})"
        )

    def _label(self) -> str:
        return str(self._source) if isinstance(self._source, Path) else "<bytes>"

    def load(self, executor: Executor | None = None) -> np.ndarray:
        """The array, in a new buffer (one copy of its bytes; in parallel pieces with an
        ``executor``, see :meth:`read_into`)."""
        out = np.empty(self.shape, self.dtype, order="F" if self.fortran else "C")
        dest = out.reshape(-1, order="A").view(np.uint8)
        if executor is None:
            self._read(dest, 0, self.nbytes)
        else:
            wait_all(
                executor.submit(self._read, dest, lo, min(lo + READ_CHUNK, self.nbytes))
                for lo in range(0, self.nbytes, READ_CHUNK)
            )
        return out

    def read_into(self, out: np.ndarray, executor: Executor | None = None) -> list[Future]:
        """Copy the bytes straight into ``out`` (C-contiguous, ``nbytes`` long, same dtype).

        With an ``executor``, the copy is split into :data:`READ_CHUNK` pieces submitted to it
        (``os.preadv`` and NumPy's copy release the GIL, so they run in parallel with each other
        and with whatever the caller does next); the futures are returned for the caller to
        wait on. Without one, it is done on return (and the list is empty).
        """
        if self.fortran and len(self.shape) > 1:
            raise ValueError(f"{self!r} is in Fortran order; use load()")
        if out.dtype != self.dtype or out.nbytes != self.nbytes or not out.flags.c_contiguous:
            raise ValueError(
                f"Expected a C-contiguous {self.dtype} output of {self.nbytes} bytes. Received: "
                f"{out.dtype}, {out.nbytes} bytes, c_contiguous={out.flags.c_contiguous}"
            )
        dest = out.reshape(-1).view(np.uint8)
        if executor is None:
            self._read(dest, 0, self.nbytes)
            return []
        return [
            executor.submit(self._read, dest, lo, min(lo + READ_CHUNK, self.nbytes))
            for lo in range(0, self.nbytes, READ_CHUNK)
        ]

    def _read(self, dest: np.ndarray, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` of the array into ``dest[lo:hi]`` (``dest``: all of it, as uint8)."""
        src = self._source
        if not isinstance(src, Path):
            part = np.frombuffer(src, np.uint8, hi - lo, self.offset + lo)
            np.copyto(dest[lo:hi], part)  # releases the GIL
            return
        view = memoryview(dest[lo:hi])
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._stat:
                raise DataError(
                    f"{src} changed between being parsed and being read. Expected the file "
                    "not to change while it loads."
                )
            done = 0
            while done < hi - lo:  # pread straight from the page cache into `dest`
                n = os.preadv(fd, [view[done:]], self.offset + lo + done)
                if n <= 0:
                    raise DataError(
                        f"{src} is truncated: expected {self.nbytes} array bytes at offset "
                        f"{self.offset}. Received {lo + done}."
                    )
                done += n
        finally:
            os.close(fd)


class _Splice:
    """The data string cut out of a pickle: where it lies, and the token that stands for it."""

    __slots__ = ("source", "offset", "nbytes", "stat", "token", "claims")

    def __init__(self, source: Any, offset: int, nbytes: int, stat: Any) -> None:
        self.source, self.offset, self.nbytes, self.stat = source, offset, nbytes, stat
        self.token = os.urandom(16)
        self.claims = 0


class _Found(Exception):  # noqa: N818 (not an error: the probe found the data string)
    def __init__(self, offset: int, nbytes: int) -> None:
        super().__init__(offset, nbytes)
        self.offset, self.nbytes = offset, nbytes


class _ProbeReader(_MappedReader):
    """A :class:`_MappedReader` that stops the unpickler when it asks for the payload of a long
    ``BINSTRING`` (how Python 2 wrote a ``str``, CIFAR's pixels included).

    CPython's C unpickler reads the 5-byte header (``T`` + length) from its own buffer, then asks
    the file for the whole payload at once with ``read(length)`` (from the payload's start: what
    it had buffered beyond the header is skipped, not kept), so the reader's position is the
    payload's start and the header is the 5 bytes before it. Any other opcode with a length has
    another opcode byte there, or 4 zero bytes (the high half of an 8-byte length).
    """

    __slots__ = ()

    def _check(self, n: int) -> None:
        pos, view = self._pos, self._view
        if (
            n >= LAZY_MIN_BYTES
            and pos >= 5
            and pos + n <= len(view)
            and view[pos - 5] == _BINSTRING
            and int.from_bytes(view[pos - 4 : pos], "little") == n
        ):
            raise _Found(pos, n)

    def read(self, n: int = -1) -> memoryview:
        if n is not None and n > 0:
            self._check(n)
        return super().read(n)


def _lazy(view: memoryview, source: Any, label: str, stat: Any) -> Any:
    size = len(view)
    try:
        return _load(_ProbeReader(view), label, size)  # no long string: the plain result
    except _Found as found:
        offset, nbytes = found.offset, found.nbytes
    end = offset + nbytes
    if end < size and view[end] == ord("q"):  # the string's memo entry goes with it, so
        end += 2  # nothing can fetch the stand-in a second time
    elif end < size and view[end] == ord("r"):
        end += 5
    splice = _Splice(source, offset, nbytes, stat)
    stand_in = b"U\x10" + splice.token + b"Q"  # BINPERSID of a 16-byte token
    spliced = b"".join((view[: offset - 5], stand_in, view[end:]))
    baseline = sys.getrefcount(splice)
    try:
        obj = _load(_MappedReader(memoryview(spliced)), label, size, splice)
    except Exception:  # noqa: BLE001  (any error: the plain load says what is wrong, as ever)
        obj = None
    # The stand-in must have become exactly one array and be held by nothing else (no memo,
    # DUP or container can have kept it: its reference count is back to where it started).
    if obj is not None and splice.claims == 1 and sys.getrefcount(splice) == baseline:
        return obj
    del obj
    return _load(_MappedReader(view), label, size)


def safe_load_lazy(source: str | Path | bytes, *, name: str | None = None) -> Any:
    """Like :func:`safe_load`, but the array holding the pickle's first long ``BINSTRING`` (at least
    :data:`LAZY_MIN_BYTES`: a CIFAR batch's pixels) comes back as an :class:`ArraySpan`, its
    bytes never copied until the caller reads them where it wants them.

    How: a first pass of the same :class:`RestrictedUnpickler` stops when it asks for that
    string's bytes (so everything before it passed the same rules); the string's record is then
    cut out and replaced by a persistent id with a random token, and a second pass unpickles the
    rest (the allow-list, the allocation budget and every check apply unchanged; the token is
    answered once, and only where an array's data is expected). Whatever does not fit (no long
    string, the stand-in not ending as exactly one array's data, any error) is loaded by
    :func:`safe_load`'s own path: the same result or the same error as :func:`safe_load`.

    Args:
        source: A path or the file's bytes.
        name: The file's name for error messages (defaults to the path).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _lazy(memoryview(source).cast("B"), source, name or "<bytes>", None)
    path = Path(source)
    label = name or str(source)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"Dataset file not found: {label}") from None
    with f:
        st = os.fstat(f.fileno())
        stat = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # empty file, a file system without mmap
            return _load(f, label, st.st_size)
        view = memoryview(mapped)
        try:
            return _lazy(view, path, label, stat)
        finally:
            try:
                view.release()
                mapped.close()
            except BufferError:  # a slice is still held (e.g. by a traceback frame)
                pass
