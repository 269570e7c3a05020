"""A restricted unpickler for CIFAR's python batches.

CIFAR's python version is a set of Python 2 pickles. A pickle can name any importable callable
and call it while loading, so a tampered file could run code. :func:`safe_load` admits only the
globals a CIFAR batch needs (NumPy's array reconstruction, ``numpy.ndarray``, ``numpy.dtype``,
and ``_codecs.encode`` restricted to latin-1 for files re-saved by Python 3) and refuses
everything else with :class:`~dlbench.errors.UnsafeDataError`. Plain containers (dicts, lists,
tuples, bytes, str, ints, floats) need no globals. Object arrays are refused too, since they are
the one NumPy path back to arbitrary objects.

Arrays come back as read-only views of the bytes in the pickle (NumPy's own reconstruction
would copy them once more): loading a 30 MB batch costs one copy less than ``pickle.load``.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dlbench.errors import DataError, UnsafeDataError


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
        count = int(np.prod(shape, dtype=np.int64))
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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    created = 0  # array stubs made by this unpickler

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> _PendingArray:
        stub = _safe_reconstruct(cls, shape, typecode)
        self.created += 1
        return stub

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = ALLOWED_GLOBALS[(module, name)]
            return self._reconstruct if found is _safe_reconstruct else found
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise _Refused(
                f"it references the global {module}.{name}, which a dataset file has no reason "
                f"to use. Expected only: {allowed}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"it uses a persistent id ({pid!r}), which is not allowed")


def safe_load(source: str | Path | bytes | BinaryIO, *, name: str | None = None) -> Any:
    """Unpickle a dataset file with :class:`RestrictedUnpickler` (``encoding="bytes"``).

    Args:
        source: A path, the file's bytes, or an open binary file.
        name: The file's name for error messages (defaults to the path).

    Raises:
        UnsafeDataError: The pickle references anything outside :data:`ALLOWED_GLOBALS`.
        DataError: The file is not a readable pickle (truncated, corrupt).
    """
    if isinstance(source, (str, Path)):
        label = name or str(source)
        try:
            with open(source, "rb") as f:
                return _load(f, label)
        except FileNotFoundError:
            raise DataError(f"Dataset file not found: {label}") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load(io.BytesIO(source), name or "<bytes>")
    return _load(source, name or getattr(source, "name", "<stream>"))


def _load(f: BinaryIO, label: str) -> Any:
    try:
        unpickler = RestrictedUnpickler(f, encoding="bytes")
        obj = unpickler.load()
        return _resolve(obj, [unpickler.created])
    except _Refused as e:
        raise UnsafeDataError(f"Refused to unpickle {label}: {e}.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(
            f"Could not unpickle {label}: expected a CIFAR python batch (a pickled dict), "
            f"received a corrupt or truncated file ({type(e).__name__}: {e})."
        ) from None
