"""Downloads with checksum verification, into the dlbench cache.

:func:`download` writes to ``<name>.part`` and renames only after the size (when the server
sent one) and the checksum (when one is known) match, so a cut connection or a tampered file
never sits in the cache looking complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from dlbench.errors import ChecksumError, DataError

_CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(
    path: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    label: str | None = None,
) -> None:
    """Check ``path`` against whichever checksums are given.

    ``label`` names the file in messages (defaults to ``path``).

    Raises:
        ChecksumError: A checksum does not match (the message gives expected and received).
    """
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        received = file_digest(path, algorithm)
        if received.lower() != expected.lower():
            raise ChecksumError(
                f"Checksum mismatch for {label or path}: expected {algorithm} {expected.lower()}, "
                f"received {received}. The file is corrupt, incomplete or has been tampered "
                "with; it was not used."
            )


def download(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to the file ``dest`` and verify it.

    Args:
        url: Where to fetch from (http, https or file).
        dest: The file to write (its folder is created).
        md5: Expected md5 hex digest, or None.
        sha256: Expected sha256 hex digest, or None.
        timeout: Socket timeout in seconds.

    Raises:
        DataError: The download failed or was cut short.
        ChecksumError: The download does not match the expected checksum (it is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
                expected_size = resp.headers.get("Content-Length")
                received = 0
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise DataError(f"Download of {url} to {dest} failed: {e}") from None
        if expected_size is not None and received != int(expected_size):
            raise DataError(
                f"Download of {url} was cut short: expected {int(expected_size)} bytes, "
                f"received {received}. Nothing was written to {dest}."
            )
        verify(part, md5=md5, sha256=sha256, label=f"{dest.name} (downloaded from {url})")
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()
    return dest
