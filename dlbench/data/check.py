"""Data-quality checks for datasets: ``dlbench data check D``.

:func:`check` loads a dataset (every split it has, unless one is named) and looks for:

- **class balance**: counts per class, imbalance ratio (largest / smallest class), empty classes;
- **labels out of range** (below 0 or at least ``num_classes``): error;
- **exact duplicates** within a split (by content hash): warning;
- **train/test leakage**: the same content in the training split and a held-out one: error;
- **missing or corrupt files** (image datasets): error;
- **splits that exist but do not load** (corrupt, refused pickle, wrong dtype, malformed
  annotations): error, since none of their checks could run (a split that is absent is info);
- **NaN / inf in features** (float datasets): error;
- **COCO**: the file is validated by :mod:`dlbench.data.coco_format` (field types and values:
  a NaN box or ``iscrowd: "yes"`` means the split does not load, an error); boxes outside the
  image or with zero area, unknown category ids, annotations of unknown images, duplicate or
  zero ids (errors); images without annotations (info).

The result is a :class:`Report` (a table on screen, a JSON document on disk); the command exits
with 1 when any error-level issue is found.

Example:
    >>> from dlbench.data.check import check
    >>> report = check("digits")  # doctest: +SKIP
    >>> report.ok, report.stats["test"]["imbalance_ratio"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.data.dataset import ArrayDataset, DataNotFoundError, Dataset
from dlbench.errors import DataError, DlbenchError
from dlbench.serialize import to_json_safe

LEVELS = ("error", "warning", "info")
SCHEMA = "dlbench.data.check/1"
IMBALANCE_WARNING = 10.0
BOX_TOLERANCE = 1.0  # pixels a box may overhang the image before it counts as outside
_MAX_EXAMPLES = 10

SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "digits": ("train", "test"),
    "coco": ("train", "val"),
    "imagefolder": ("train", "val"),
    "synthetic": ("test",),
}
"""The splits :func:`check` loads for a dataset name when no split is given."""

LOAD_OPTIONS: dict[str, dict[str, Any]] = {"coco": {"strict": False}}
"""Options :func:`check` loads a dataset with: COCO files with dangling references or repeated
ids still load, so that every such problem is listed (as an error) instead of only the first."""


@dataclass
class Issue:
    """One finding. ``level`` is ``"error"``, ``"warning"`` or ``"info"``."""

    level: str
    check: str
    message: str
    split: str = ""
    count: int = 0
    examples: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "check": self.check,
            "split": self.split,
            "count": int(self.count),
            "message": self.message,
            "examples": [to_json_safe(e) for e in self.examples[:_MAX_EXAMPLES]],
        }


@dataclass
class Report:
    """The outcome of :func:`check`.

    Attributes:
        dataset: The dataset's name.
        sources: Where each split was read from.
        stats: Per split: samples, classes, class counts, imbalance ratio...
        issues: Every finding, errors first.
    """

    dataset: str
    sources: dict[str, str] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def add(self, level: str, check: str, message: str, **kw: Any) -> None:
        self.issues.append(Issue(level, check, message, **kw))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        """True when no error-level issue was found."""
        return not self.errors

    def sorted_issues(self) -> list[Issue]:
        return sorted(self.issues, key=lambda i: (LEVELS.index(i.level), i.split, i.check))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "ok": self.ok,
            "summary": {
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "info": len(self.issues) - len(self.errors) - len(self.warnings),
            },
            "sources": self.sources,
            "splits": to_json_safe(self.stats),
            "issues": [i.to_dict() for i in self.sorted_issues()],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text


# ---------------------------------------------------------------------- entry points


def check(
    dataset_or_name: Dataset | str,
    *,
    root: str | None = None,
    split: str | None = None,
    **kw: Any,
) -> Report:
    """Check a dataset's quality.

    Args:
        dataset_or_name: A loaded :class:`~dlbench.data.dataset.Dataset` (checked alone), or a
            registry name: then every split in :data:`SPLITS` is loaded (or only ``split``, plus
            the others for the leakage check where they exist).
        root: Passed to :func:`dlbench.data.load`.
        split: Only check this split.
        **kw: Passed to :func:`dlbench.data.load`.

    Raises:
        DataError: The dataset (or the named split) could not be loaded.
    """
    if isinstance(dataset_or_name, Dataset):
        ds = dataset_or_name
        report = Report(ds.info.name)
        _check_split(report, ds.info.split, ds)
        return report

    from dlbench import datasets

    name = dataset_or_name
    report = Report(name)
    wanted = [split] if split is not None else list(SPLITS.get(name, ("train", "test")))
    others = [s for s in SPLITS.get(name, ("train", "test")) if s not in wanted]
    loaded: dict[str, Dataset] = {}
    absent: DlbenchError | None = None
    broken: DlbenchError | None = None
    options = {**LOAD_OPTIONS.get(name, {}), **kw}
    for s in wanted + others:
        try:
            ds = datasets.load(name, root=root, split=s, **options)
        except DataNotFoundError as e:
            if s == split:
                raise
            absent = absent or e
            if s in wanted:
                report.add("info", "splits", f"split {s!r} not checked: {e}", split=s)
            continue
        except DlbenchError as e:
            # The split is there but does not load (corrupt, refused, wrong type): every check
            # of it (and the leakage check against it) could not run. That is an error.
            if s == split:
                raise
            broken = broken or e
            what = "checks" if s in wanted else "leakage check"
            report.add(
                "error",
                "load",
                f"split {s!r} exists but could not be loaded, so its {what} did not run: {e}",
                split=s,
            )
            continue
        if any(_same_files(d, ds) for d in loaded.values()):
            continue  # the same files under two split names (e.g. a flat image folder)
        loaded[s] = ds
    if not any(s in loaded for s in wanted):
        raise broken or absent or DataError(f"No split of {name!r} could be loaded.")
    hashes: dict[str, list[Any]] = {}
    for s, ds in loaded.items():
        try:
            hashes[s] = _check_split(report, s, ds, full=s in wanted)
        except DlbenchError as e:  # a sample that does not load: the split was not checked
            report.add(
                "error",
                "load",
                f"split {s!r} could not be read to the end, so its checks did not run: {e}",
                split=s,
            )
    _check_leakage(report, hashes)
    return report


def _same_files(a: Dataset, b: Dataset) -> bool:
    fa, fb = getattr(a, "files", None), getattr(b, "files", None)
    if fa is not None and fb is not None:
        return list(fa) == list(fb)
    return (a.info.source, a.info.split) == (b.info.source, b.info.split)


# ---------------------------------------------------------------------- per split


def _check_split(report: Report, split: str, ds: Dataset, *, full: bool = True) -> list[Any]:
    """Run the per-split checks (when ``full``); return the content hashes for leakage."""
    info = ds.info
    report.sources[split] = info.source
    if info.task == "detection" and hasattr(ds, "coco_ground_truth"):
        from dlbench.data.check_coco import check_coco

        return check_coco(report, split, ds, full=full)
    hashes, labels, nonfinite, broken = _scan(ds)
    if not full:
        return hashes
    st: dict[str, Any] = {"samples": len(ds), "classes": info.num_classes}
    if info.synthetic:
        report.add(
            "info",
            "synthetic",
            "synthetic data: fine for timing, meaningless for accuracy",
            split=split,
        )
    for kind, items in broken.items():
        report.add(
            "error",
            f"{kind} files",
            f"{len(items)} {kind} file(s), e.g. {items[0][1]}",
            split=split,
            count=len(items),
            examples=[p for _, p in items],
        )
    if nonfinite:
        report.add(
            "error",
            "nan/inf",
            f"{len(nonfinite)} sample(s) contain NaN or inf in their features",
            split=split,
            count=len(nonfinite),
            examples=nonfinite,
        )
    if info.task == "classification" and labels is not None:
        _check_labels(report, split, labels, info.num_classes, info.class_names, st)
    _check_duplicates(report, split, hashes, labels)
    report.stats[split] = st
    return hashes


def _scan(ds: Dataset) -> tuple[list[Any], np.ndarray | None, list[int], dict[str, list]]:
    """Content hashes, labels, indices of samples with NaN/inf, and missing/corrupt files."""
    broken: dict[str, list[tuple[int, str]]] = {}
    nonfinite: list[int] = []
    labels: np.ndarray | None = None
    files = getattr(ds, "files", None)
    if files is not None and hasattr(ds, "content_hashes"):  # image files on disk
        hashes = ds.content_hashes()
        broken = _check_files(files)
        labels = np.asarray(ds.targets)
        return hashes, labels, nonfinite, broken
    if hasattr(ds, "raw"):
        x, labels = ds.raw()
        flat = np.ascontiguousarray(x).reshape(len(x), -1)
        hashes = [_digest(row) for row in flat]
        if np.issubdtype(flat.dtype, np.floating):
            nonfinite = np.flatnonzero(~np.isfinite(flat).all(axis=1)).tolist()
        return hashes, np.asarray(labels), nonfinite, broken
    if isinstance(ds, ArrayDataset):
        chunks = [ds.arrays()]
    else:
        chunks = ((b.inputs, b.targets) for b in ds.batches(512))
    hashes = []
    label_parts = []
    offset = 0
    for x, y in chunks:
        flat = np.ascontiguousarray(x).reshape(len(x), -1)
        hashes.extend(_digest(row) for row in flat)
        if np.issubdtype(flat.dtype, np.floating):
            bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
            nonfinite.extend((bad + offset).tolist())
        if isinstance(y, np.ndarray):
            label_parts.append(y)
        offset += len(x)
    if label_parts:
        labels = np.concatenate(label_parts)
    return hashes, labels, nonfinite, broken


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()


def _decoded_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) of a fully decoded image, or None when it does not decode or is
    refused by the loaders' pixel limit (the loader would fail on it too)."""
    from dlbench.adapters.datasets._image import verify_image

    try:
        return verify_image(path)
    except Exception:  # noqa: BLE001 - a DataError, or any other decoder failure
        return None


def _check_files(paths: Sequence[Path]) -> dict[str, list[tuple[int, str]]]:
    missing: list[tuple[int, str]] = []
    corrupt: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        if not Path(p).is_file():
            missing.append((i, str(p)))
            continue
        if _decoded_size(p) is None:
            corrupt.append((i, str(p)))
    out = {}
    if missing:
        out["missing"] = missing
    if corrupt:
        out["corrupt"] = corrupt
    return out


def _check_labels(
    report: Report,
    split: str,
    labels: np.ndarray,
    num_classes: int,
    class_names: Sequence[str],
    st: dict[str, Any],
) -> None:
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        if labels.size and not np.all(np.isfinite(labels)):
            report.add("error", "labels", "labels contain NaN or inf", split=split)
            return
        labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        report.add(
            "error",
            "label range",
            f"{bad.size} label(s) outside [0, {num_classes}), e.g. label {int(labels[bad[0]])} "
            f"at index {int(bad[0])}",
            split=split,
            count=int(bad.size),
            examples=bad[:_MAX_EXAMPLES].tolist(),
        )
    good = labels[(labels >= 0) & (labels < num_classes)]
    counts = np.bincount(good, minlength=num_classes) if num_classes else np.zeros(0, int)
    names = (
        list(class_names)
        if len(class_names) == num_classes
        else [str(i) for i in range(num_classes)]
    )
    st["class_counts"] = {n: int(c) for n, c in zip(names, counts)}
    if num_classes:
        lo, hi = int(counts.min()), int(counts.max())
        ratio = hi / lo if lo else math.inf
        st.update(min_class_count=lo, max_class_count=hi, imbalance_ratio=ratio)
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            report.add(
                "warning",
                "class balance",
                f"{len(empty)} class(es) have no samples: {', '.join(empty[:5])}"
                f"{'...' if len(empty) > 5 else ''}",
                split=split,
                count=len(empty),
                examples=empty,
            )
        elif ratio > IMBALANCE_WARNING:
            report.add(
                "warning",
                "class balance",
                f"imbalance ratio {ratio:.1f} (largest class {hi}, smallest {lo})",
                split=split,
            )


def _check_duplicates(
    report: Report, split: str, hashes: Sequence[Any], labels: np.ndarray | None
) -> None:
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h is not None:
            groups[h].append(i)
    dups = [g for g in groups.values() if len(g) > 1]
    if not dups:
        return
    extra = sum(len(g) - 1 for g in dups)
    conflicting = 0
    if labels is not None and len(labels) == len(hashes):
        conflicting = sum(1 for g in dups if len({int(labels[i]) for i in g}) > 1)
    msg = f"{extra} exact duplicate sample(s) in {len(dups)} group(s), e.g. indices {dups[0][:5]}"
    if conflicting:
        msg += f"; {conflicting} group(s) have conflicting labels"
    report.add(
        "warning",
        "duplicates",
        msg,
        split=split,
        count=extra,
        examples=[g[:5] for g in dups[:_MAX_EXAMPLES]],
    )


def _check_leakage(report: Report, hashes: dict[str, list[Any]]) -> None:
    if "train" not in hashes:
        return
    train = {h for h in hashes["train"] if h is not None}
    for s, hs in hashes.items():
        if s == "train":
            continue
        leaked = [i for i, h in enumerate(hs) if h is not None and h in train]
        if leaked:
            report.add(
                "error",
                "leakage",
                f"{len(leaked)} sample(s) of {s!r} also appear in 'train' (identical content), "
                f"e.g. {s} index {leaked[0]}",
                split=s,
                count=len(leaked),
                examples=leaked[:_MAX_EXAMPLES],
            )
