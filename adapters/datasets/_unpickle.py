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

Resource limits: an array's bytes travel inside the pickle, so a real dataset pickle never
needs more array memory than its own size. A pickle that calls the allowed ``numpy.ndarray``
constructor directly (to allocate from a declared shape) may allocate at most
:data:`ALLOC_LIMIT_FACTOR` times the pickle's size in all; beyond that it is refused with a
:class:`~dlbench.errors.DataError` before anything is allocated. A pickle nested deeper than
Python's recursion limit is a :class:`~dlbench.errors.DataError`, not a ``RecursionError``.
"""

from __future__ import annotations

import codecs
import io
import math
import mmap
import os
import pickle
import sys
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
        if not isinstance(raw, (bytes, bytearray)):
            raise _Refused(f"array data of type {type(raw).__name__} is not allowed")
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"array shape {shape} has a negative dimension")
        count = math.prod(shape)
        if len(raw) != count * dtype.itemsize:
            raise ValueError(
                f"array data holds {len(raw)} bytes, expected {count * dtype.itemsize} for "
                f"shape {shape} and dtype {dtype}"
            )
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
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    created = 0  # array stubs made by this unpickler

    def __init__(self, file: BinaryIO, *, size: int | None = None, **kw: Any) -> None:
        super().__init__(file, **kw)
        size = _MIN_ALLOC_LIMIT if size is None else size
        budget = max(ALLOC_LIMIT_FACTOR * size, _MIN_ALLOC_LIMIT)
        self._ndarray = _NdarrayGuard(budget, size)

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


def _load(f: BinaryIO, label: str, size: int | None = None) -> Any:
    try:
        unpickler = RestrictedUnpickler(f, encoding="bytes", size=size)
        obj = unpickler.load()
        return _resolve(obj, [unpickler.created])
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
