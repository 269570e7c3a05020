"""A restricted unpickler for CIFAR's python batches.

CIFAR's python version is a set of Python 2 pickles. A pickle can name any importable callable
and call it while loading, so a tampered file could run code. :func:`safe_load` admits only the
globals a CIFAR batch needs (NumPy's array reconstruction, ``numpy.ndarray``, ``numpy.dtype``,
and ``_codecs.encode`` restricted to latin-1 for files re-saved by Python 3) and refuses
everything else with :class:`~dlbench.errors.UnsafeDataError`. Plain containers (dicts, lists,
tuples, bytes, str, ints, floats) need no globals. Object arrays are refused too, since they are
the one NumPy path back to arbitrary objects.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dlbench.errors import DataError, UnsafeDataError

try:  # NumPy 2 moved the module; old pickles still name numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _Refused(f"an object dtype ({dtype}) is not allowed")
    return dtype


def _safe_reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise _Refused(f"array reconstruction of {cls!r} is not allowed (only numpy.ndarray)")
    return _reconstruct(cls, shape, typecode)


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

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
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
        return RestrictedUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        raise UnsafeDataError(f"Refused to unpickle {label}: {e}.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(
            f"Could not unpickle {label}: expected a CIFAR python batch (a pickled dict), "
            f"received a corrupt or truncated file ({type(e).__name__}: {e})."
        ) from None
