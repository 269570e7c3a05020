"""The one validator of the COCO instances format (``instances_*.json``).

Used by the COCO dataset adapter (:mod:`dlbench.adapters.datasets.coco`), the COCO evaluator
and metric (:mod:`dlbench.metrics.coco`) and the data check (:mod:`dlbench.data.check`), so a
file means the same thing to all three. Types and values are validated at the boundary; nothing
is coerced:

- the document is an object with the lists ``images``, ``annotations`` and ``categories``, each
  entry an object holding the fields its consumer needs (:data:`DATASET_FIELDS` for a dataset
  read from disk, :data:`GROUND_TRUTH_FIELDS` for evaluation, where ``iscrowd`` defaults to 0,
  ``area`` to ``w * h`` and image sizes are optional);
- ids (``id``, ``image_id``, ``category_id``) are ints (a string ``"17"`` or a float is an
  error); ``width`` and ``height`` positive ints; ``file_name`` a non-empty string;
- ``iscrowd`` is 0 or 1 (``"yes"``, ``null`` or ``2`` is an error, never a crowd box);
- ``bbox`` is 4 finite numbers ``[x, y, w, h]`` with ``w, h >= 0``; ``area`` a finite
  number ``>= 0``: NaN or inf anywhere is an error.

Those *format* errors raise :class:`CocoFormatError` at the first offending entry, saying what
was expected and what was received. *Reference* problems (duplicate ids, annotations of an
image or a category the file does not define) are collected in
:attr:`CocoInstances.problems`: the evaluator and the dataset raise on them
(:meth:`CocoInstances.raise_problems`), the data check lists every one of them.

Example:
    >>> inst = validate_instances({"images": [{"id": 1}], "categories": [{"id": 3}],
    ...     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 5]}]})
    >>> inst.ann_area.tolist(), inst.ann_iscrowd.tolist()
    ([10.0], [False])
    >>> validate_instances({"images": [{"id": 1}], "categories": [{"id": 3}],
    ...     "annotations": [{"id": 17, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 5],
    ...                      "iscrowd": "yes"}]})
    Traceback (most recent call last):
    ...
    dlbench.data.coco_format.CocoFormatError: ground truth: Expected `iscrowd` to be 0 or 1. \
Received: iscrowd='yes' (annotation id 17)
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import DataError, MetricError

__all__ = [
    "DATASET_FIELDS",
    "GROUND_TRUTH_FIELDS",
    "CocoFormatError",
    "CocoInstances",
    "Problem",
    "is_int",
    "is_number",
    "read_json",
    "validate_instances",
]

DATASET_FIELDS: dict[str, tuple[str, ...]] = {
    "images": ("id", "width", "height", "file_name"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area", "iscrowd"),
    "categories": ("id", "name"),
}
"""Fields every entry of an official COCO instances file has (what a dataset needs)."""

GROUND_TRUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "images": ("id",),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id",),
}
"""The minimum evaluation needs; ``iscrowd`` defaults to 0, ``area`` to ``w * h``."""

_SECTIONS = ("images", "annotations", "categories")
_ENTRY = {"images": "image", "annotations": "annotation", "categories": "category"}
_SHOW = 5
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class CocoFormatError(DataError, MetricError):
    """A COCO instances or results document is malformed.

    A :class:`~dlbench.errors.DataError` (a bad file) and, for the evaluator's callers, a
    :class:`~dlbench.errors.MetricError` (bad metric input).
    """


@dataclass
class Problem:
    """A reference problem: ids that repeat, or point at nothing.

    Attributes:
        check: The data check's name for it (``"ids"``, ``"images"``, ``"categories"``).
        what: Short description used by the data check, e.g. ``"duplicate image id(s)"``.
        message: The full error message (expected / received).
        examples: Every offending item (ids or small dicts).
    """

    check: str
    what: str
    message: str
    examples: list[Any] = field(default_factory=list)


@dataclass
class CocoInstances:
    """A validated COCO instances document, held as arrays (entries in file order).

    Attributes:
        source: Where it came from (a path, or ``"ground truth"``), used in messages.
        data: The document itself (not copied: treat as read-only).
        image_ids: (I,) int64. widths, heights: (I,) int64, 0 where the entry has none.
        file_names: I strings, ``""`` where the entry has none.
        category_ids: (K,) int64. category_names: K strings (the id where there is no name).
        ann_ids, ann_image, ann_category: (N,) int64.
        ann_bbox: (N, 4) float64 ``[x, y, w, h]``.
        ann_area: (N,) float64 (``w * h`` where the entry has no ``area``).
        ann_iscrowd: (N,) bool.
        problems: Reference problems found (see :class:`Problem`).
    """

    source: str
    data: Mapping[str, Any]
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    file_names: list[str]
    category_ids: np.ndarray
    category_names: list[str]
    ann_ids: np.ndarray
    ann_image: np.ndarray
    ann_category: np.ndarray
    ann_bbox: np.ndarray
    ann_area: np.ndarray
    ann_iscrowd: np.ndarray
    problems: list[Problem] = field(default_factory=list)

    def raise_problems(self) -> None:
        """Raise :class:`CocoFormatError` for the first reference problem, if any."""
        if self.problems:
            raise CocoFormatError(f"{self.source}: {self.problems[0].message}")


# --------------------------------------------------------------------------- type predicates


def is_int(v: Any) -> bool:
    """A Python or NumPy integer (not a bool, not an integral float, not a string)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v: Any) -> bool:
    """A finite int or float (Python or NumPy); bools, strings and NaN/inf are not."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        try:
            return math.isfinite(float(v))
        except OverflowError:  # an int beyond float range is no coordinate
            return False
    return isinstance(v, (float, np.floating)) and math.isfinite(v)


def _few(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")


# --------------------------------------------------------------------------- reading


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Read a JSON document, turning every way it can fail into a :class:`CocoFormatError`.

    Args:
        path: The file.
        what: What it should be, for messages, e.g. ``"a COCO instances JSON file"``.
    """
    p = Path(path)
    if not p.is_file():
        raise CocoFormatError(f"Expected {what}. Received a missing path: {p}")
    try:
        with open(p, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CocoFormatError(
            f"{p}: not valid JSON, e.g. a truncated or corrupt file ({e}). Expected {what}."
        ) from None
    except RecursionError:
        raise CocoFormatError(
            f"{p}: nested too deeply to parse. Expected {what} (a few levels of nesting)."
        ) from None
    except OSError as e:
        raise CocoFormatError(f"{p}: could not be read ({e}). Expected {what}.") from None


# --------------------------------------------------------------------------- validation


def validate_instances(
    data: Any,
    source: str = "ground truth",
    *,
    fields: Mapping[str, Sequence[str]] = GROUND_TRUTH_FIELDS,
) -> CocoInstances:
    """Validate a COCO instances document and return it as :class:`CocoInstances`.

    Args:
        data: The parsed JSON document (a dict).
        source: Named in every message (the file path, when there is one).
        fields: The fields every entry of each section must have: :data:`DATASET_FIELDS` or
            :data:`GROUND_TRUTH_FIELDS`. Optional fields that are present are validated too.

    Raises:
        CocoFormatError: A format error (see the module docstring). Reference problems do not
            raise here; they are in ``.problems``.
    """
    v = _Validator(source)
    if not isinstance(data, Mapping):
        v.fail(
            "Expected a COCO instances object with 'images', 'annotations' and 'categories'. "
            f"Received: {type(data).__name__}"
        )
    sections: dict[str, list[Any]] = {}
    for key in _SECTIONS:
        if key not in data:
            v.fail(
                f"missing top-level field {key!r}. Expected the COCO instances format with "
                "'images', 'annotations' and 'categories'."
            )
        items = data[key]
        if not isinstance(items, list):
            v.fail(f"Expected {key!r} to be a list. Received: {type(items).__name__}")
        bad_entries = not set(map(type, items)) <= {dict}
        for i, item in enumerate(items if bad_entries else ()):
            if not isinstance(item, Mapping):
                v.fail(
                    f"Expected every entry of {key!r} to be an object. Received {key}[{i}]: "
                    f"{type(item).__name__} {item!r:.80}"
                )
        required = tuple(fields.get(key, ()))
        complete = all(all(map(operator.contains, items, repeat(f))) for f in required)
        for i, item in enumerate(items if not complete else ()):
            for f in required:
                if f not in item:
                    ident = f" (id={item['id']!r})" if "id" in item else ""
                    v.fail(
                        f"{key}[{i}]{ident} is missing the {f!r} field. Expected every entry of "
                        f"{key!r} to have {', '.join(required)}."
                    )
        sections[key] = items
    images, anns, cats = sections["images"], sections["annotations"], sections["categories"]

    image_ids = v.ints(images, "images", "id")
    widths = v.sizes(images, "width", image_ids)
    heights = v.sizes(images, "height", image_ids)
    file_names = v.names(images, "file_name", image_ids, default="", nonempty=True)
    category_ids = v.ints(cats, "categories", "id")
    category_names = v.names(cats, "name", category_ids, default=None, nonempty=False)
    ann_ids = v.ints(anns, "annotations", "id")
    ann_image = v.ints(anns, "annotations", "image_id", ann_ids)
    ann_category = v.ints(anns, "annotations", "category_id", ann_ids)
    bbox = v.boxes(anns, ann_ids)
    area = v.areas(anns, ann_ids, bbox)
    crowd = v.iscrowd(anns, ann_ids)

    inst = CocoInstances(
        source=source,
        data=data,
        image_ids=image_ids,
        widths=widths,
        heights=heights,
        file_names=file_names,
        category_ids=category_ids,
        category_names=category_names,
        ann_ids=ann_ids,
        ann_image=ann_image,
        ann_category=ann_category,
        ann_bbox=bbox,
        ann_area=area,
        ann_iscrowd=crowd,
    )
    inst.problems = _reference_problems(inst)
    return inst


def _repeated(ids: np.ndarray) -> list[int]:
    s = np.sort(ids, kind="stable")
    return np.unique(s[1:][s[1:] == s[:-1]]).tolist()


def _reference_problems(inst: CocoInstances) -> list[Problem]:
    out: list[Problem] = []
    for ids, entry in (
        (inst.image_ids, "image"),
        (inst.category_ids, "category"),
        (inst.ann_ids, "annotation"),
    ):
        dup = _repeated(ids)
        if dup:
            out.append(
                Problem(
                    "ids",
                    f"duplicate {entry} id(s)",
                    f"Expected unique {entry} ids. Received duplicates: {_few(dup)}",
                    dup,
                )
            )
    known_img = np.isin(inst.ann_image, inst.image_ids)
    if not known_img.all():
        bad = np.flatnonzero(~known_img)
        ex = [
            {"annotation_id": int(inst.ann_ids[i]), "image_id": int(inst.ann_image[i])} for i in bad
        ]
        unknown = np.unique(inst.ann_image[bad]).tolist()
        out.append(
            Problem(
                "images",
                "annotation(s) of an image id not in 'images'",
                f"Expected every image_id in the annotations to be an image of the ground truth "
                f"({inst.image_ids.size} images). Received unknown image_id(s): {_few(unknown)}",
                ex,
            )
        )
    known_cat = np.isin(inst.ann_category, inst.category_ids)
    if not known_cat.all():
        bad = np.flatnonzero(~known_cat)
        ex = [
            {"annotation_id": int(inst.ann_ids[i]), "category_id": int(inst.ann_category[i])}
            for i in bad
        ]
        unknown = np.unique(inst.ann_category[bad]).tolist()
        out.append(
            Problem(
                "categories",
                "annotation(s) with an unknown category id",
                "Expected every category_id in the annotations to be a category of the ground "
                f"truth ({_few(np.unique(inst.category_ids).tolist())}). Received unknown "
                f"category_id(s): {_few(unknown)}",
                ex,
            )
        )
    return out


_FLOAT_TYPES = {int, float}


def _get(items: list[Any], key: str, default: Any) -> list[Any]:
    if set(map(type, items)) <= {dict}:
        return list(map(dict.get, items, repeat(key), repeat(default)))
    return [item.get(key, default) for item in items]


class _Validator:
    """Field readers that raise at the first bad value, naming the entry.

    Each has a fast path (one C-level pass over the types, then NumPy) for the common valid
    file, and a slow path that finds the first offending entry for the message.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str) -> None:
        raise CocoFormatError(f"{self.source}: {message}")

    @staticmethod
    def _where(section: str, i: int, ids: np.ndarray | None) -> str:
        if ids is not None:
            return f"{_ENTRY[section]} id {int(ids[i])}"
        return f"{section}[{i}]"

    def ints(
        self, items: list[Any], section: str, key: str, ids: np.ndarray | None = None
    ) -> np.ndarray:
        values = list(map(operator.itemgetter(key), items))
        if set(map(type, values)) <= {int}:
            try:
                return np.asarray(values, dtype=np.int64).reshape(-1)
            except OverflowError:
                pass
        for i, x in enumerate(values):
            if not is_int(x) or not _INT64_MIN <= x <= _INT64_MAX:
                self.fail(
                    f"Expected `{key}` to be an int (64-bit). Received: {key}={x!r} "
                    f"({self._where(section, i, ids)})"
                )
        return np.asarray([int(x) for x in values], dtype=np.int64).reshape(-1)

    def sizes(self, images: list[Any], key: str, ids: np.ndarray) -> np.ndarray:
        values = _get(images, key, 0)
        if set(map(type, values)) <= {int}:
            try:
                out = np.asarray(values, dtype=np.int64).reshape(-1)
                bad = np.flatnonzero(out < 1)
                if not bad.size or all(key not in images[i] for i in bad.tolist()):
                    return out
            except OverflowError:
                pass
        out = np.zeros(len(images), np.int64)
        for i, item in enumerate(images):
            if key in item:
                x = item[key]
                if not is_int(x) or not 1 <= x <= _INT64_MAX:
                    self.fail(
                        f"Expected `{key}` to be a positive int. Received: {key}={x!r} "
                        f"(image id {int(ids[i])})"
                    )
                out[i] = x
        return out

    def names(
        self,
        items: list[Any],
        key: str,
        ids: np.ndarray,
        *,
        default: str | None,
        nonempty: bool,
    ) -> list[str]:
        out = []
        section = "images" if key == "file_name" else "categories"
        for i, item in enumerate(items):
            if key not in item:
                out.append(str(int(ids[i])) if default is None else default)
                continue
            x = item[key]
            if type(x) is not str or (nonempty and not x):
                want = "a non-empty string" if nonempty else "a string"
                self.fail(
                    f"Expected `{key}` to be {want}. Received: {key}={x!r} "
                    f"({_ENTRY[section]} id {int(ids[i])})"
                )
            out.append(x)
        return out

    def boxes(self, anns: list[Any], ids: np.ndarray) -> np.ndarray:
        if not anns:
            return np.zeros((0, 4), np.float64)
        values = list(map(operator.itemgetter("bbox"), anns))
        if set(map(type, values)) <= {list} and set(map(len, values)) == {4}:
            flat = [x for b in values for x in b]
            if set(map(type, flat)) <= _FLOAT_TYPES:
                try:
                    arr = np.asarray(flat, dtype=np.float64).reshape(-1, 4)
                except OverflowError:
                    arr = None
                if (
                    arr is not None
                    and np.isfinite(arr).all()
                    and (arr[:, 2] >= 0).all()
                    and (arr[:, 3] >= 0).all()
                ):
                    return arr
        for i, b in enumerate(values):
            ok = (
                isinstance(b, (list, tuple))
                and len(b) == 4
                and all(is_number(x) for x in b)
                and b[2] >= 0
                and b[3] >= 0
            )
            if not ok:
                self.fail(
                    "Expected `bbox` to be 4 finite numbers [x, y, width, height] with width "
                    f"and height >= 0. Received: bbox={b!r} (annotation id {int(ids[i])})"
                )
        return np.asarray(values, dtype=np.float64).reshape(-1, 4)

    def areas(self, anns: list[Any], ids: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        wh = bbox[:, 2] * bbox[:, 3]
        values = _get(anns, "area", None)
        types = set(map(type, values))
        if types <= _FLOAT_TYPES | {type(None)}:
            try:
                arr = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
            except OverflowError:
                arr = None
            present = np.asarray([x is not None for x in values], bool)
            if arr is not None and not (present & ~(np.isfinite(arr) & (arr >= 0))).any():
                return np.where(present, arr, wh).reshape(-1)
        for i, a in enumerate(anns):
            if "area" in a:
                x = a["area"]
                if not is_number(x) or x < 0:
                    self.fail(
                        f"Expected `area` to be a finite number >= 0. Received: area={x!r} "
                        f"(annotation id {int(ids[i])})"
                    )
        return np.asarray(
            [float(a["area"]) if "area" in a else w for a, w in zip(anns, wh.tolist())],
            np.float64,
        ).reshape(-1)

    def iscrowd(self, anns: list[Any], ids: np.ndarray) -> np.ndarray:
        values = _get(anns, "iscrowd", 0)
        if set(map(type, values)) <= {int} and set(values) <= {0, 1}:
            return np.asarray(values, dtype=bool).reshape(-1)
        out = np.zeros(len(anns), bool)
        for i, a in enumerate(anns):
            if "iscrowd" in a:
                x = a["iscrowd"]
                if not (isinstance(x, (int, np.integer)) and x in (0, 1)):
                    self.fail(
                        f"Expected `iscrowd` to be 0 or 1. Received: iscrowd={x!r} "
                        f"(annotation id {int(ids[i])})"
                    )
                out[i] = bool(x)
        return out
