"""Safe archive handling: extraction and in-place reading of .tar(.gz) and .zip files.

Every member is checked before anything is written: absolute paths, ``..`` components, links
(symbolic or hard) and device/FIFO files are refused with
:class:`~dlbench.errors.UnsafeDataError`; a truncated or corrupt archive is a
:class:`~dlbench.errors.DataError` naming the file. Extraction goes to a temporary folder next
to the destination and is renamed into place only when complete, so a failed extraction never
leaves a half-written dataset behind.

Resource limit: the regular members of an archive may declare at most :data:`MAX_EXPANSION`
times the archive's own size on disk in all (at least :data:`MIN_EXPANSION_LIMIT`). Dataset
archives compress a few times at most (CIFAR about 1.1x, COCO's annotation JSON about 6x), so
a member that would expand to many GiB (a decompression bomb) is refused with a
:class:`~dlbench.errors.DataError` from its declared size, before any of it is read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from dlbench.errors import DataError, UnsafeDataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, zipfile.BadZipFile)

MAX_EXPANSION = 100
"""The members of an archive may declare at most this many times the archive's size."""

MIN_EXPANSION_LIMIT = 64 << 20
"""Bytes any archive may expand to, however small it is."""


class _Budget:
    """Counts the declared sizes of an archive's members against the expansion limit."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.size = archive.stat().st_size
        self.limit = max(MAX_EXPANSION * self.size, MIN_EXPANSION_LIMIT)
        self.used = 0

    def take(self, name: str, size: int) -> None:
        self.used += max(int(size), 0)
        if self.used > self.limit:
            raise DataError(
                f"Refused archive {self.archive}: member {name!r} declares {size:,} bytes, "
                f"which takes the members to {self.used:,} bytes. Expected at most "
                f"{self.limit:,} bytes in all: {MAX_EXPANSION}x the archive's {self.size:,} "
                f"bytes (at least {MIN_EXPANSION_LIMIT >> 20} MiB), far more than any dataset "
                "archive needs. This looks like a decompression bomb."
            )


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` names an archive dlbench can read (by its suffix)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def check_member_name(name: str, archive: str | Path) -> str:
    """Return the normalised member name, or raise if it could escape the destination."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (parts and (":" in parts[0] or parts[0].startswith("/"))):
        raise UnsafeDataError(
            f"Refused archive {archive}: member {name!r} has an absolute path. Expected paths "
            "relative to the archive root."
        )
    if ".." in parts:
        raise UnsafeDataError(
            f"Refused archive {archive}: member {name!r} contains '..' (path traversal). "
            "Expected paths inside the archive root."
        )
    return "/".join(p for p in parts if p not in ("", "."))


def _check_tar_member(m: tarfile.TarInfo, archive: str | Path) -> str:
    name = check_member_name(m.name, archive)
    if m.issym() or m.islnk():
        raise UnsafeDataError(
            f"Refused archive {archive}: member {m.name!r} is a "
            f"{'symbolic' if m.issym() else 'hard'} link (to {m.linkname!r}). Expected only "
            "regular files and folders."
        )
    if not (m.isfile() or m.isdir()):
        raise UnsafeDataError(
            f"Refused archive {archive}: member {m.name!r} is a device, FIFO or other special "
            "file. Expected only regular files and folders."
        )
    return name


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def iter_members(archive: str | Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """Yield ``(normalised_name, read)`` for every regular file, checking every member.

    ``read()`` returns the member's bytes; call it before advancing the iterator (tar archives
    are read as one stream).

    Raises:
        UnsafeDataError: A member is unsafe (see the module docstring).
        DataError: The archive is truncated or corrupt.
    """
    archive = Path(archive)
    try:
        budget = _Budget(archive)
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    name = check_member_name(info.filename, archive)
                    if _zip_is_symlink(info):
                        raise UnsafeDataError(
                            f"Refused archive {archive}: member {info.filename!r} is a symbolic "
                            "link. Expected only regular files and folders."
                        )
                    if not info.is_dir():
                        budget.take(info.filename, info.file_size)
                        yield name, _guarded(archive, lambda info=info: zf.read(info))
            return
        with tarfile.open(archive, mode="r|*") as tf:
            for m in tf:
                name = _check_tar_member(m, archive)
                if m.isfile():
                    budget.take(m.name, m.size)

                    def read(m: tarfile.TarInfo = m) -> bytes:
                        f = tf.extractfile(m)
                        assert f is not None
                        data = f.read()
                        if len(data) != m.size:
                            raise EOFError(f"member {m.name!r} is cut short")
                        return data

                    yield name, _guarded(archive, read)
    except FileNotFoundError:
        raise DataError(f"Archive not found: {archive}") from None
    except DataError:
        raise
    except _READ_ERRORS as e:
        raise _corrupt(archive, e) from None


def _corrupt(archive: Path, e: BaseException) -> DataError:
    return DataError(
        f"Could not read archive {archive}: it is truncated or corrupt "
        f"({type(e).__name__}: {e}). Expected a complete .tar.gz/.tar/.zip file; "
        "delete it and download it again."
    )


def _guarded(archive: Path, read: Callable[[], bytes]) -> Callable[[], bytes]:
    def guarded() -> bytes:
        try:
            return read()
        except _READ_ERRORS as e:
            raise _corrupt(archive, e) from None

    return guarded


def read_members(archive: str | Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The bytes of every regular member whose normalised name satisfies ``wanted``.

    The whole archive is checked for unsafe members even though only some are read.
    """
    out: dict[str, bytes] = {}
    for name, read in iter_members(archive):
        if wanted(name):
            out[name] = read()
    return out


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Safely extract ``archive`` into the folder ``dest`` (created), returning ``dest``.

    Members are written as plain files (no permissions bits beyond the user's defaults, no
    owners, no links). The extraction happens in a temporary folder inside ``dest`` and is
    moved into place only once every member was read.
    """
    archive = Path(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        tops: set[str] = set()
        for name, read in iter_members(archive):
            if not name:
                continue
            target = tmp.joinpath(*name.split("/"))
            # Defence in depth: the resolved target must stay inside the temporary folder.
            if not str(target.resolve()).startswith(str(tmp.resolve()) + os.sep):
                raise UnsafeDataError(
                    f"Refused archive {archive}: member {name!r} would be written outside {dest}."
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                f.write(read())
            tops.add(name.split("/")[0])
        for top in sorted(tops):
            final = dest / top
            if final.exists():
                if final.is_dir():
                    shutil.rmtree(final)
                else:
                    final.unlink()
            os.replace(tmp / top, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
