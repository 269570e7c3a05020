"""CIFAR-10 and CIFAR-100, read from the files they are distributed as.

Both the python version (``cifar-10-python.tar.gz``: pickled batches) and the binary version
(``cifar-10-binary.tar.gz``: fixed-size records) are supported, as the archive itself or as the
extracted folder. Pickles go through :mod:`dlbench.adapters.datasets._unpickle` only; archives
through :mod:`dlbench.adapters.datasets._archive`.

``root`` may be: the archive file; the extracted folder (``cifar-10-batches-py``...); or a folder
holding either. Without ``root`` the per-user cache is used (``$DLBENCH_CACHE/cifar10``, see
:mod:`dlbench.data.cache`). ``download=True`` fetches the official archive there (``url=`` overrides
the address), verifies its checksum and extracts it safely. A local archive is checked against
the published md5 too; pass ``md5="<hex>"`` for your own repackaged copy or ``md5=None`` to skip.

Batches are float32 NCHW, ``(x / 255 - mean) / std`` with the per-channel mean and standard
deviation of the training split (:data:`CIFAR10_MEAN`...), identical for every backend.
:meth:`CifarDataset.raw` gives the images as stored: uint8 (N, 3, 32, 32) and int64 labels.

Example:
    >>> from dlbench import datasets
    >>> ds = datasets.load("cifar10", split="test", download=True)  # doctest: +SKIP
    >>> images, labels = ds.raw()  # doctest: +SKIP
    >>> images.shape, labels.dtype  # doctest: +SKIP
    ((10000, 3, 32, 32), dtype('int64'))
"""

from __future__ import annotations

import concurrent.futures
import os
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.adapters.datasets import _archive, _download
from dlbench.adapters.datasets._unpickle import ArraySpan, safe_load, safe_load_lazy, wait_all
from dlbench.data.cache import cache_dir
from dlbench.data.dataset import Batch, DataNotFoundError, Dataset, DatasetInfo
from dlbench.errors import ConfigError, DataError

OFFICIAL = "official"
"""Default of ``md5``: the checksum published for the official archive."""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_BASE_URL = "https://www.cs.toronto.edu/~kriz/"
_PIXELS = 3 * 32 * 32


def _readers() -> ThreadPoolExecutor:
    """Threads that copy pixels from the page cache while the next batch is parsed."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return ThreadPoolExecutor(max(1, min(4, cpus)), thread_name_prefix="dlbench-cifar-read")


@dataclass(frozen=True)
class _Layout:
    archive: str
    folder: str
    md5: str | None
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: tuple[str, ...]


class CifarDataset(Dataset):
    """Common implementation of :class:`Cifar10` and :class:`Cifar100`.

    Args:
        root: Archive, extracted folder, or folder holding either; default the cache.
        split: ``"train"`` or ``"test"``.
        download: Fetch the archive into ``root`` (or the cache) when it is not there.
        format: ``"python"``, ``"binary"`` or ``"auto"`` (python first, then binary).
        url: Download address; default the official one for ``format``.
        md5: Expected md5 of the archive: :data:`OFFICIAL` (the published one), a hex string,
            or None to skip the check. Applies to downloads and to archives given as ``root``.
        sha256: An additional expected sha256, or None.
        normalize: Normalise batches with the dataset mean/std (else ``x / 255`` only).
    """

    NAME = ""
    NUM_CLASSES = 0
    MEAN: tuple[float, ...] = ()
    STD: tuple[float, ...] = ()
    LAYOUTS: dict[str, _Layout] = {}

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "test",
        *,
        download: bool = False,
        format: str = "auto",
        url: str | None = None,
        md5: str | None = OFFICIAL,
        sha256: str | None = None,
        normalize: bool = True,
    ) -> None:
        if split not in ("train", "test"):
            raise ConfigError(
                f"Expected `split` to be 'train' or 'test' for {self.NAME}. Received: "
                f"split={split!r}"
            )
        if format not in ("auto", "python", "binary"):
            raise ConfigError(
                f"Expected `format` to be 'auto', 'python' or 'binary'. Received: format={format!r}"
            )
        self.split = split
        self.normalize = bool(normalize)
        self._md5 = md5
        self._sha256 = sha256
        root_path = Path(root).expanduser() if root is not None else cache_dir(self.NAME)
        kind, path, fmt = self._locate(root_path, format)
        if kind == "missing":
            if not download:
                names = " or ".join(
                    f"{lay.archive} / {lay.folder}/" for f, lay in self.LAYOUTS.items()
                )
                raise DataNotFoundError(
                    f"{self.NAME} not found under {root_path}: expected {names}. Pass "
                    "download=True to fetch it, or root= pointing at your copy."
                )
            fmt = "python" if format == "auto" else format
            path = self._download(root_path, fmt, url)
            kind = "dir"
        self.format = fmt
        self.source = str(path)
        self.path = path
        files = self._read_files(kind, path, fmt)
        self._images, self._labels, self._extra, self._class_names = self._parse(files, fmt)
        for arr in (self._images, self._labels, *self._extra.values()):
            arr.flags.writeable = False
        self._info = DatasetInfo(
            name=self.NAME,
            task="classification",
            split=split,
            input_shape=(3, 32, 32),
            num_classes=len(self._class_names),
            num_samples=len(self._labels),
            source=self.source,
            class_names=tuple(self._class_names),
            transform=self.transform_description(),
        )

    # ------------------------------------------------------------------ public

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return len(self._labels)

    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """The images as stored (uint8, N x 3 x 32 x 32) and the labels (int64), read-only."""
        return self._images, self._labels

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        x = self._images[idx].astype(np.float32) * np.float32(1.0 / 255.0)
        if self.normalize:
            mean = np.asarray(self.MEAN, np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(self.STD, np.float32).reshape(1, 3, 1, 1)
            x = (x - mean) / std
        return Batch(x, self._labels[idx].copy(), idx)

    def content_hashes(self) -> list[bytes]:
        """One blake2b digest of each stored image (for duplicate and leakage checks)."""
        import hashlib

        flat = self._images.reshape(len(self._images), -1)
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]

    def transform_description(self) -> dict[str, Any]:
        d: dict[str, Any] = {"layout": "NCHW", "dtype": "float32", "scale": "1/255"}
        if self.normalize:
            d.update(mean=list(self.MEAN), std=list(self.STD), formula="(x/255 - mean) / std")
        else:
            d.update(formula="x/255")
        return d

    # ------------------------------------------------------------------ locating

    def _locate(self, root: Path, format: str) -> tuple[str, Path, str]:
        fmts = ("python", "binary") if format == "auto" else (format,)
        if root.is_file():
            if not _archive.is_archive(root):
                raise DataError(
                    f"Expected {self.NAME} root to be a folder or a .tar.gz archive. Received "
                    f"the file {root}"
                )
            fmt = "binary" if "bin" in root.name.lower() else "python"
            if format != "auto" and fmt != format:
                raise DataError(
                    f"{root} looks like the {fmt} version, but format={format!r} was asked for."
                )
            self._verify_archive(root, fmt)
            return "archive", root, fmt
        if root.is_dir():
            for fmt in fmts:
                lay = self.LAYOUTS[fmt]
                if (root / lay.test[0]).is_file() or (root / lay.train[0]).is_file():
                    return "dir", root, fmt
                if (root / lay.folder).is_dir():
                    return "dir", root / lay.folder, fmt
            for fmt in fmts:
                archive = root / self.LAYOUTS[fmt].archive
                if archive.is_file():
                    self._verify_archive(archive, fmt)
                    return "archive", archive, fmt
        return "missing", root, ""

    def _expected(self, fmt: str, md5: str | None) -> str | None:
        return self.LAYOUTS[fmt].md5 if md5 == OFFICIAL else md5

    def _verify_archive(self, archive: Path, fmt: str) -> None:
        md5 = self._expected(fmt, self._md5)
        if md5 is None and self._sha256 is None:
            return
        try:
            _download.verify(archive, md5=md5, sha256=self._sha256)
        except DataError as e:
            if self._md5 == OFFICIAL:
                raise type(e)(
                    f"{e} If this is your own repackaged copy, pass md5='<its md5>' (or md5=None "
                    "to skip the check)."
                ) from None
            raise

    def _download(self, root: Path, fmt: str, url: str | None) -> Path:
        lay = self.LAYOUTS[fmt]
        url = url or _BASE_URL + lay.archive
        archive = root / lay.archive
        _download.download(url, archive, md5=self._expected(fmt, self._md5), sha256=self._sha256)
        _archive.extract(archive, root)
        folder = root / lay.folder
        if not folder.is_dir():
            raise DataError(
                f"The archive downloaded from {url} did not contain the folder {lay.folder}/. "
                f"Expected the official {lay.archive} layout."
            )
        return folder

    # ------------------------------------------------------------------ reading

    def _read_files(self, kind: str, path: Path, fmt: str) -> dict[str, Any]:
        """Map each needed file name to a Path (folder) or its bytes (archive)."""
        lay = self.LAYOUTS[fmt]
        needed = (lay.train if self.split == "train" else lay.test) + lay.meta
        if kind == "dir":
            missing = [n for n in needed if not (path / n).is_file()]
            if missing:
                raise DataNotFoundError(
                    f"{self.NAME} folder {path} is incomplete: missing {', '.join(missing)}. "
                    f"Expected the official {lay.folder}/ layout."
                )
            return {n: path / n for n in needed}
        prefix = lay.folder + "/"
        members = _archive.read_members(
            path, lambda name: name.startswith(prefix) and name[len(prefix) :] in needed
        )
        found = {name[len(prefix) :]: data for name, data in members.items()}
        missing = [n for n in needed if n not in found]
        if missing:
            raise DataNotFoundError(
                f"{self.NAME} archive {path} is incomplete: missing "
                f"{', '.join(prefix + n for n in missing)}."
            )
        return {n: (found[n], f"{path}:{prefix}{n}") for n in needed}

    @abstractmethod
    def _parse(
        self, files: dict[str, Any], fmt: str
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
        """Images, labels, extra label arrays and class names from the needed files."""

    # helpers shared by subclasses

    @staticmethod
    def _label(src: Any) -> str:
        return str(src) if isinstance(src, Path) else src[1]

    def _load_pickle(self, src: Any, *, lazy: bool = False) -> dict[bytes, Any]:
        load = safe_load_lazy if lazy else safe_load
        obj = load(src) if isinstance(src, Path) else load(src[0], name=src[1])
        if not isinstance(obj, dict):
            raise DataError(
                f"Expected {self._label(src)} to hold a dict. Received: {type(obj).__name__}"
            )
        return obj

    def _python_batch(self, src: Any, label_keys: tuple[bytes, ...]) -> tuple[np.ndarray, ...]:
        data, *labels = self._python_batch_parts(src, label_keys)
        if isinstance(data, ArraySpan):
            with _readers() as pool:
                data = data.load(pool)
        return (self._images_of(data), *labels)

    @staticmethod
    def _images_of(data: np.ndarray | ArraySpan) -> np.ndarray:
        return (data.load() if isinstance(data, ArraySpan) else data).reshape(-1, 3, 32, 32)

    def _python_batch_parts(self, src: Any, label_keys: tuple[bytes, ...]) -> tuple[Any, ...]:
        """One python batch: its pixels (an :class:`ArraySpan` still in the file, or an array
        when the pickle is not laid out as Python 2 wrote it) and its label arrays, checked."""
        d = self._load_pickle(src, lazy=True)
        name = self._label(src)
        for key in (b"data", *label_keys):
            if key not in d:
                raise DataError(
                    f"{name} is not a CIFAR batch: missing key {key!r}. Received keys: "
                    f"{sorted(d)!r}"
                )
        data = d[b"data"]
        if isinstance(data, ArraySpan) and data.fortran and len(data.shape) > 1:
            data = data.load()  # not how CIFAR is stored; read it as declared, then check
        if (
            not isinstance(data, (np.ndarray, ArraySpan))
            or data.dtype != np.uint8
            or len(data.shape) != 2
            or (data.shape[1] != _PIXELS)
        ):
            got = (
                f"{data.dtype} {data.shape}"
                if isinstance(data, (np.ndarray, ArraySpan))
                else type(data)
            )
            raise DataError(
                f"{name}: expected b'data' to be a uint8 array of shape (N, {_PIXELS}). "
                f"Received: {got}"
            )
        n = data.shape[0]
        out = [data]
        for key in label_keys:
            try:
                labels = np.asarray(d[key])
            except (ValueError, TypeError, OverflowError, RecursionError):
                labels = None
            if labels is None or labels.dtype.kind not in "iu":
                got = "ragged or nested lists" if labels is None else f"dtype {labels.dtype}"
                raise DataError(
                    f"{name}: expected {n} integer {key!r} (one per image). Received "
                    f"{type(d[key]).__name__} of {got}"
                )
            labels = labels.astype(np.int64)
            if labels.shape != (n,):
                raise DataError(
                    f"{name}: expected {n} {key!r} (one per image). Received shape {labels.shape}"
                )
            out.append(labels)
        return tuple(out)

    def _binary_records(self, src: Any, n_labels: int) -> np.ndarray:
        record = n_labels + _PIXELS
        dtype = np.dtype([("labels", np.uint8, (n_labels,)), ("data", np.uint8, (_PIXELS,))])
        if isinstance(src, Path):
            size = src.stat().st_size
            if size % record:
                raise DataError(self._bad_size(str(src), size, record))
            return np.fromfile(src, dtype=dtype)
        data, name = src
        if len(data) % record:
            raise DataError(self._bad_size(name, len(data), record))
        return np.frombuffer(data, dtype=dtype)

    @staticmethod
    def _bad_size(name: str, size: int, record: int) -> str:
        return (
            f"{name} is truncated or not a CIFAR binary batch: expected a multiple of {record} "
            f"bytes (label bytes + 3072 pixels per record). Received {size} bytes."
        )

    def _text_lines(self, src: Any) -> list[str]:
        raw = src.read_bytes() if isinstance(src, Path) else src[0]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{self._label(src)}: expected UTF-8 class names, one per line. Received bytes "
                f"that are not UTF-8 ({e})."
            ) from None
        return [line.strip() for line in text.splitlines() if line.strip()]

    @staticmethod
    def _names(values: Any, name: str, key: str) -> list[str]:
        if not isinstance(values, list):
            raise DataError(f"{name}: expected {key} to be a list of names.")
        try:
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
        except UnicodeDecodeError as e:
            raise DataError(f"{name}: expected {key} as UTF-8 names. Received {e}.") from None

    @staticmethod
    def _concat(parts: list[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @staticmethod
    def _fill(dest: np.ndarray, data: np.ndarray | ArraySpan, pool: Any) -> list[Any]:
        """Copy one batch's pixels into ``dest`` (a slice of the output), once: submitted to
        ``pool`` when they are still in the file (the futures are returned), else now."""
        if isinstance(data, ArraySpan):
            return data.read_into(dest, pool)
        dest[...] = data.reshape(dest.shape)
        return []

    def _python_batches(
        self, srcs: list[Any], label_keys: tuple[bytes, ...]
    ) -> tuple[np.ndarray, ...]:
        """Several python batches as one array per field, each batch's pixels read straight
        from its file into their place in the output (one copy: see
        :func:`~dlbench.adapters.datasets._unpickle.safe_load_lazy`) by reader threads while the
        next batch is parsed.
        A batch that came back as an array (a pickle not laid out as Python 2 wrote it) is
        copied into place and freed before the next one is read.

        The output is sized from the first batch times the number of batches; batches of other
        sizes (user-made files) fall back to a concatenation.
        """
        if len(srcs) == 1:
            return self._python_batch(srcs[0], label_keys)
        first = self._python_batch_parts(srcs[0], label_keys)
        n0 = first[0].shape[0]
        outs = [np.empty((n0 * len(srcs), 3, 32, 32), np.uint8)]
        outs += [np.empty((n0 * len(srcs),), a.dtype) for a in first[1:]]
        filled, extra, reads = 0, [], []
        with _readers() as pool:
            try:
                for i, src in enumerate(srcs):
                    part = first if i == 0 else self._python_batch_parts(src, label_keys)
                    first = None
                    n = part[0].shape[0]
                    if extra or filled + n > len(outs[0]):
                        extra.append((self._images_of(part[0]), *part[1:]))
                        continue
                    reads += self._fill(outs[0][filled : filled + n], part[0], pool)
                    for out, a in zip(outs[1:], part[1:], strict=True):
                        out[filled : filled + n] = a
                    filled += n
                    del part
            except BaseException:
                concurrent.futures.wait(reads)  # no read outlives the output; this error wins
                raise
            wait_all(reads)
        return tuple(
            np.concatenate([out[:filled], *(p[i] for p in extra)])
            if extra or filled < len(out)
            else out
            for i, out in enumerate(outs)
        )


class Cifar10(CifarDataset):
    """CIFAR-10: 50,000 training and 10,000 test images of 10 classes (32 x 32 RGB).

    See :class:`CifarDataset` for the arguments and the module docstring for the formats.
    """

    NAME = "cifar10"
    NUM_CLASSES = 10
    MEAN = CIFAR10_MEAN
    STD = CIFAR10_STD
    LAYOUTS = {
        "python": _Layout(
            archive="cifar-10-python.tar.gz",
            folder="cifar-10-batches-py",
            md5="c58f30108f718f92721af3b95e74349a",
            train=tuple(f"data_batch_{i}" for i in range(1, 6)),
            test=("test_batch",),
            meta=("batches.meta",),
        ),
        "binary": _Layout(
            archive="cifar-10-binary.tar.gz",
            folder="cifar-10-batches-bin",
            md5="c32a1d4ab5d03f1284b67883e8d87530",
            train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            test=("test_batch.bin",),
            meta=("batches.meta.txt",),
        ),
    }

    def _parse(
        self, files: dict[str, Any], fmt: str
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
        lay = self.LAYOUTS[fmt]
        batches = lay.train if self.split == "train" else lay.test
        if fmt == "python":
            images, labels = self._python_batches([files[b] for b in batches], (b"labels",))
            meta_src = files["batches.meta"]
            meta = self._load_pickle(meta_src)
            if b"label_names" not in meta:
                raise DataError(f"{self._label(meta_src)}: missing key b'label_names'.")
            names = self._names(meta[b"label_names"], self._label(meta_src), "label_names")
        else:
            recs = [self._binary_records(files[b], 1) for b in batches]
            images = self._concat([r["data"].reshape(-1, 3, 32, 32) for r in recs])
            labels = self._concat([r["labels"][:, 0] for r in recs]).astype(np.int64)
            names = self._text_lines(files["batches.meta.txt"])
        if not images.flags.owndata or not images.flags.c_contiguous:
            images = np.ascontiguousarray(images)
        return images, labels, {}, names


class Cifar100(CifarDataset):
    """CIFAR-100: 50,000 training and 10,000 test images, 100 fine classes in 20 coarse ones.

    Args:
        label_mode: ``"fine"`` (100 classes, the default) or ``"coarse"`` (20 superclasses).
        **kwargs: As for :class:`CifarDataset`.

    Both label sets are available as :attr:`fine_labels` and :attr:`coarse_labels`.
    """

    NAME = "cifar100"
    NUM_CLASSES = 100
    MEAN = CIFAR100_MEAN
    STD = CIFAR100_STD
    LAYOUTS = {
        "python": _Layout(
            archive="cifar-100-python.tar.gz",
            folder="cifar-100-python",
            md5="eb9058c3a382ffc7106e4002c42a8d85",
            train=("train",),
            test=("test",),
            meta=("meta",),
        ),
        "binary": _Layout(
            archive="cifar-100-binary.tar.gz",
            folder="cifar-100-binary",
            md5=None,  # no published checksum on record: pass md5= to verify a download
            train=("train.bin",),
            test=("test.bin",),
            meta=("fine_label_names.txt", "coarse_label_names.txt"),
        ),
    }

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "test",
        *,
        label_mode: str = "fine",
        **kwargs: Any,
    ) -> None:
        if label_mode not in ("fine", "coarse"):
            raise ConfigError(
                f"Expected `label_mode` to be 'fine' or 'coarse'. Received: "
                f"label_mode={label_mode!r}"
            )
        self.label_mode = label_mode
        super().__init__(root, split, **kwargs)

    @property
    def fine_labels(self) -> np.ndarray:
        return self._extra["fine"]

    @property
    def coarse_labels(self) -> np.ndarray:
        return self._extra["coarse"]

    @property
    def fine_class_names(self) -> tuple[str, ...]:
        return tuple(self._all_names["fine"])

    @property
    def coarse_class_names(self) -> tuple[str, ...]:
        return tuple(self._all_names["coarse"])

    def _parse(
        self, files: dict[str, Any], fmt: str
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
        lay = self.LAYOUTS[fmt]
        src = files[(lay.train if self.split == "train" else lay.test)[0]]
        if fmt == "python":
            images, fine, coarse = self._python_batch(src, (b"fine_labels", b"coarse_labels"))
            meta_src = files["meta"]
            meta = self._load_pickle(meta_src)
            label = self._label(meta_src)
            for key in (b"fine_label_names", b"coarse_label_names"):
                if key not in meta:
                    raise DataError(f"{label}: missing key {key!r}.")
            fine_names = self._names(meta[b"fine_label_names"], label, "fine_label_names")
            coarse_names = self._names(meta[b"coarse_label_names"], label, "coarse_label_names")
        else:
            recs = self._binary_records(src, 2)
            images = np.ascontiguousarray(recs["data"].reshape(-1, 3, 32, 32))
            coarse = recs["labels"][:, 0].astype(np.int64)
            fine = recs["labels"][:, 1].astype(np.int64)
            fine_names = self._text_lines(files["fine_label_names.txt"])
            coarse_names = self._text_lines(files["coarse_label_names.txt"])
        self._all_names = {"fine": fine_names, "coarse": coarse_names}
        extra = {"fine": fine, "coarse": coarse}
        labels = fine if self.label_mode == "fine" else coarse
        names = fine_names if self.label_mode == "fine" else coarse_names
        return images, labels, extra, names
