"""Reading a ModelSpec's weights file (``.npz``) safely: no pickle, sizes checked against what
the file declares and what the graph expects, before NumPy allocates anything."""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import SpecError

MAX_WEIGHTS_EXPANSION = 100
"""A weights ``.npz`` may declare at most this many times its size on disk (``np.savez`` stores
arrays uncompressed, about 1x; ``np.savez_compressed`` rarely reaches 10x)."""


def _declared_params(section: Any, jpath: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """The graph file's ``params`` section as ``name -> (shape, dtype)``, validated."""
    if not isinstance(section, dict):
        raise SpecError(
            f"{jpath}: expected 'params' to be an object mapping each weight name to "
            f'{{"shape": [...], "dtype": "float32"}}. Received: {type(section).__name__}'
        )
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for name, meta in section.items():
        shape = meta.get("shape") if isinstance(meta, dict) else None
        dtype = meta.get("dtype") if isinstance(meta, dict) else None
        if (
            not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or not isinstance(dtype, str)
        ):
            raise SpecError(
                f"{jpath}: expected params[{name!r}] to be "
                f'{{"shape": [non-negative ints], "dtype": "<numpy dtype>"}}. Received: {meta!r:.200}'
            )
        out[name] = (tuple(shape), dtype)
    return out


def read_weights(npath: str | Path) -> dict[str, np.ndarray]:
    """Read a weights ``.npz`` with ``allow_pickle=False``, refusing anything malformed.

    Before NumPy reads a member, its ``.npy`` header is checked against the member's size: a
    header may only declare the bytes the member actually holds (a file cannot make the loader
    allocate more than it contains), and all members together at most
    :data:`MAX_WEIGHTS_EXPANSION` times the file's size.

    Raises:
        SpecError: missing, truncated or corrupt file; a member that is not a plain numeric
            ``.npy`` array; a header that declares more than the member holds.
    """
    npath = Path(npath)
    if not npath.is_file():
        raise SpecError(f"Spec weights file not found: {npath}")
    expected = "an .npz of plain numeric arrays written by ModelSpec.save (np.savez)"
    params: dict[str, np.ndarray] = {}
    try:
        limit = MAX_WEIGHTS_EXPANSION * max(npath.stat().st_size, 1 << 20)
        with zipfile.ZipFile(npath) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > limit:
                raise SpecError(
                    f"Spec weights file {npath}: its members declare "
                    f"{sum(i.file_size for i in infos):,} bytes. Expected at most {limit:,} "
                    f"({MAX_WEIGHTS_EXPANSION}x the file's size)."
                )
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise SpecError(
                        f"Spec weights file {npath} is not plain numeric arrays: member "
                        f"{info.filename!r} is not an array (.npy). Expected {expected}."
                    )
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    header = f.tell()
                if dtype.hasobject:
                    raise SpecError(
                        f"Spec weights file {npath} is not plain numeric arrays: member "
                        f"{info.filename!r} holds Python objects (dtype {dtype}), which only "
                        f"pickle can read. Expected {expected}."
                    )
                need = math.prod(shape) * dtype.itemsize
                if header + need != info.file_size:
                    raise SpecError(
                        f"Spec weights file {npath}: member {info.filename!r} declares shape "
                        f"{shape} {dtype} ({need:,} bytes) but holds "
                        f"{info.file_size - header:,} bytes of data. Expected {expected}."
                    )
            with np.load(npath, allow_pickle=False) as z:
                for k in z.files:
                    arr = z[k]
                    if not isinstance(arr, np.ndarray):
                        raise SpecError(
                            f"Spec weights file {npath} is not plain numeric arrays: member "
                            f"{k!r} is not an array. Expected {expected}."
                        )
                    params[k] = arr
    except SpecError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError) as exc:
        raise SpecError(
            f"Spec weights file {npath} is truncated, corrupt or not plain numeric arrays "
            f"({type(exc).__name__}: {exc}). Expected {expected}."
        ) from None
    return params
