"""The result document: one JSON file per run, schema-versioned, written atomically.

Layout (schema ``dlbench.result`` version 1, JSON Schema in ``dlbench/execution/schema/result-v1.json``)::

    {
      "schema": "dlbench.result", "schema_version": 1,
      "run_id": "...", "created": "2026-...Z", "updated": "...", "status": "running|complete|interrupted",
      "config": {...},                    # BenchmarkConfig.to_dict()
      "environment": {...},               # dlbench.execution.environment.capture()
      "model": {"name", "fingerprint", "stats"},
      "dataset": {...},                   # DatasetInfo.to_dict()
      "backends": {name: {"device": {...: {"versions", "settings", "build_time_s",
                                           "parity", "peak_rss_bytes"}}}},
      "cells": [{"id", "backend", "device", "scenario", "batch_size",
                 "status": "ok|failed|invalid", "error", "settings",
                 "timing": {"samples_s": [...], "stats": {...}, ...} | null,
                 "metrics": {...}, "validity": {...}, "memory": {...},
                 "started", "finished"}],
      "warnings": ["..."]
    }

The file is rewritten after every cell through a temporary file in the same folder and
``os.replace``, so a crash or Ctrl-C leaves either the previous or the new version, never a
broken file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from dlbench.errors import ConfigError, DlbenchError
from dlbench.serialize import to_json_safe

SCHEMA_NAME = "dlbench.result"
SCHEMA_VERSION = 1
#: The training result document (``dlbench train``): JSON Schema in
#: ``dlbench/execution/schema/train-result-v1.json``.
TRAIN_SCHEMA_NAME = "dlbench.train-result"
TRAIN_SCHEMA_VERSION = 1
CELL_STATUSES = ("ok", "invalid", "failed", "skipped")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a result file is as readable as any
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(to_json_safe(data), fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the kernel says it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, restored at once
    os.umask(mask)
    return mask


def _schema_file(name: str) -> dict[str, Any]:
    text = resources.files("dlbench.execution").joinpath(f"schema/{name}").read_text("utf-8")
    return json.loads(text)


def schema() -> dict[str, Any]:
    """The JSON Schema of the result document."""
    return _schema_file("result-v1.json")


def train_schema() -> dict[str, Any]:
    """The JSON Schema of the training result document (``dlbench train``)."""
    return _schema_file("train-result-v1.json")


def new_train_document(
    config: dict[str, Any],
    environment: dict[str, Any],
    model: dict[str, Any],
    dataset: dict[str, Any],
    plan: dict[str, Any],
) -> dict[str, Any]:
    """A fresh training result document (schema ``dlbench.train-result`` v1), status
    ``running``; :func:`new_train_backend` adds each backend's entry."""
    return {
        **_header(TRAIN_SCHEMA_NAME, TRAIN_SCHEMA_VERSION, config, environment),
        "model": model,
        "dataset": dataset,
        "plan": plan,
        "backends": {},
        "agreement": {},
        "warnings": [],
    }


def _header(
    schema: str, version: int, config: dict[str, Any], environment: dict[str, Any]
) -> dict[str, Any]:
    """The fields every result document starts with (a new run, status ``running``)."""
    t = now()
    return {
        "schema": schema,
        "schema_version": version,
        "run_id": uuid.uuid4().hex,
        "created": t,
        "updated": t,
        "status": "running",
        "config": config,
        "environment": environment,
    }


def new_train_backend(doc: dict[str, Any], backend: str) -> dict[str, Any]:
    """The (running) entry of ``backend`` in a training document: its status, error and runs."""
    info: dict[str, Any] = {"status": "running", "error": None, "runs": []}
    doc["backends"][backend] = info
    return info


def new_document(config: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    return {
        **_header(SCHEMA_NAME, SCHEMA_VERSION, config, environment),
        "model": {},
        "dataset": {},
        "backends": {},
        "cells": [],
        "warnings": [],
    }


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result file, checking that it is one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Expected a dlbench result file at {p}. Received: no such file"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Expected a dlbench result JSON file. {p} is not valid JSON: {exc}"
        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
        raise ConfigError(f"Expected a dlbench result file (schema {SCHEMA_NAME!r}). Received: {p}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"Expected result schema version {SCHEMA_VERSION}. Received: {doc.get('schema_version')!r} in {p}"
        )
    check_document(doc, p)
    return doc


def check_document(doc: Any, where: str | os.PathLike[str] = "the result document") -> None:
    """Check ``doc`` against ``result-v1.json``; the first field that departs from it is a
    ConfigError naming ``where``, the field's JSON pointer, what was expected and what was found.

    Example:
        >>> check_document({"schema": "dlbench.result"}, "r.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        dlbench.errors.ConfigError: Expected `/schema_version` in r.json to be present ...
    """
    from dlbench.execution.schema_check import first_error

    err = first_error(doc, schema())
    if err is not None:
        field = f"`{err.pointer}`" if err.pointer else "the document"
        raise ConfigError(
            f"Expected {field} in {where} to be {err.expected} (result schema "
            f"{SCHEMA_NAME} v{SCHEMA_VERSION}). Received: {err.found}"
        )


def cell_record(
    cell: dict[str, Any], event: dict[str, Any], backend_info: dict[str, Any]
) -> dict[str, Any]:
    """The record of a finished cell: the cell (``Cell.to_dict()``), the worker's ``cell``
    event (its scenario record, start and end) and the backend's settings and parity."""
    record = event["record"]
    validity = record.get("validity") or {"valid": True, "reasons": []}
    return {
        **cell,
        "status": "ok" if validity.get("valid", True) else "invalid",
        "error": None,
        "settings": backend_info.get("settings", {}),
        "parity_ok": (backend_info.get("parity") or {}).get("ok"),
        **{k: v for k, v in record.items()},
        "validity": validity,
        "started": event.get("started"),
        "finished": event.get("finished"),
    }


def failed_cell_record(cell: dict[str, Any], error: str) -> dict[str, Any]:
    """The record of a cell that failed (or never ran) with ``error``."""
    return {
        **cell,
        "status": "failed",
        "error": error,
        "settings": {},
        "timing": None,
        "metrics": {},
        "validity": {"valid": False, "reasons": [error]},
        "memory": {},
    }


def upsert_cell(doc: dict[str, Any], record: dict[str, Any]) -> None:
    """Insert ``record`` or replace the cell with the same id."""
    cells = doc["cells"]
    for i, c in enumerate(cells):
        if c["id"] == record["id"]:
            cells[i] = record
            return
    cells.append(record)


def done_cell_ids(doc: dict[str, Any]) -> set[str]:
    """Ids of cells that finished (ok or invalid): ``--resume`` skips them."""
    return {c["id"] for c in doc.get("cells", []) if c.get("status") in ("ok", "invalid")}


#: Config keys that must match for ``--resume`` to continue an earlier run.
RESUME_KEYS = (
    "model",
    "dataset",
    "split",
    "precision",
    "intra_op_threads",
    "inter_op_threads",
    "timing_mode",
    "model_options",
    "dataset_options",
    "backend_options",
)


def check_resumable(doc: dict[str, Any], config: dict[str, Any]) -> None:
    old = doc.get("config", {})
    diffs = [k for k in RESUME_KEYS if old.get(k) != config.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: file has {old.get(k)!r}, now {config.get(k)!r}" for k in diffs)
        raise ConfigError(f"Cannot resume: the earlier run used different settings ({detail}).")


# -- one writer per result file --------------------------------------------------------------------


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of a result file: ``.NAME.lock`` next to it."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the result file ``path`` for one writer (a run) until the block ends.

    An advisory ``flock`` on :func:`lock_path`, which holds the owner's pid: the kernel
    releases it when its process ends however it ends (a SIGKILLed run never leaves a lock
    that blocks the next one); the lock file is removed on the way out.

    Raises:
        ConfigError: Another process holds it (exit 2, before any worker starts).
    """
    lp = lock_path(path)
    fd = _acquire(lp, Path(path))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lp)  # still held: whoever opened this inode meanwhile sees it is gone
        os.close(fd)


def _acquire(lp: Path, path: Path) -> int:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one writer is not enforced there
        return os.open(os.devnull, os.O_RDONLY)
    while True:
        try:
            lp.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"Expected a writable folder for the result file {path}. Received: "
                f"{exc.strerror or exc} creating {lp}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise ConfigError(
                f"Expected no other dlbench run writing {path}. Received: it is being written by "
                f"{who} (lock {lp}); wait for that run to end or choose another --out"
            ) from None
        try:  # the holder may have released and removed it between our open and flock
            current = os.stat(lp)
            mine = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid of the run writing ``path`` now, or None (no run: free, or a stale lock file)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        return None
    finally:
        os.close(fd)


# -- when the result file cannot be written ---------------------------------------------------------


class ResultWriteError(DlbenchError):
    """The result could not be written anywhere; ``document`` holds everything measured."""

    def __init__(self, message: str, document: dict[str, Any]) -> None:
        super().__init__(message)
        self.document = document


def rescue_paths(path: str | os.PathLike[str], run_id: str) -> list[Path]:
    """Where a run's results go when ``path`` cannot be written (full disk, read-only, I/O
    error): a file named after it and the run in the temp folder, ``/dev/shm`` (memory, Linux)
    and the current folder, in that order."""
    p = Path(path)
    name = f"{p.stem}.rescue-{run_id[:8]}{p.suffix or '.json'}"
    folders = [Path(tempfile.gettempdir()), Path("/dev/shm"), Path.cwd()]
    out: list[Path] = []
    for folder in folders:
        candidate = folder / name
        if folder.is_dir() and candidate not in out and candidate != p:
            out.append(candidate)
    return out
