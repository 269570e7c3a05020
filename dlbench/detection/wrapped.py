"""Bring your own detector: the contract between a wrapped detector's outputs and dlbench.

``get_backend(fw).wrap(native, input_shape=(3, H, W), detection=...)`` (PyTorch, TensorFlow /
Keras, JAX, ONNX Runtime) turns a user's detector into a dlbench Model whose accuracy scenario
is the zoo detectors' (:func:`~dlbench.execution.scenarios.detection.detection_accuracy`: the
letterboxed image in, the model, the post-processing, boxes back through the letterbox,
``coco_evaluate``, every stage timed per image). ``detection`` is one of:

- :class:`DetectorOutputs`: a function of the model's outputs (as NumPy: one array, or the
  dict / tuple / list of arrays the model returns; Hugging Face ``ModelOutput`` becomes a dict)
  returning one item per image, ``{"boxes", "scores", "labels"}`` or ``(boxes, scores, labels)``:
  boxes ``(K, 4)`` in ``box_format`` (``xyxy``, ``xywh`` or ``cxcywh``) in model-input pixels, or
  in ``[0, 1]`` of the input width and height with ``normalized=True`` (DETR, YOLOS); scores
  ``(K,)`` without NaN; labels ``(K,)`` integer class indices of the model. ``label_map`` maps a
  model class index to a dataset category id; a detection whose label it does not list is dropped
  (DETR's "no object" class), and is counted. Without ``label_map`` the labels are the dataset's
  contiguous labels ``0..C-1``, as for the zoo's detectors. Then (float64 NumPy): boxes converted
  to xyxy input pixels and clipped to the input, ``score > score_threshold`` kept, class-aware NMS
  at ``iou_threshold`` on the ``pre_nms_top_k`` best (None: no NMS, for set-prediction detectors
  whose outputs are final), the ``max_detections`` best kept (ties: lower index first; COCO evaluates 100 per image).
- a :class:`~dlbench.detection.Decoder`: the model returns one raw head tensor in the zoo's layout
  ``(N, L, 4 [+1] + C)``; the backend's own post-processing runs (its option ``postprocess``:
  ``native`` or ``numpy``), exactly as for a zoo detector.

The input is dlbench's: the dataset letterboxes each image (centred, fill 114) to its
``image_size`` and scales it to ``[0, 1]`` (or normalises with the dataset options ``mean`` /
``std``). The wrapped ``input_shape`` must be that size; ``stride`` (the detector's largest
stride) makes a size that is not a multiple of it an error at wrap time. One probe batch runs
through the model and the post-processing at wrap time, so outputs that do not match the
declared decode fail there.

Example:
    >>> import numpy as np
    >>> def outputs(out):  # one (K, 6) array per image: x1, y1, x2, y2, score, class
    ...     return [(o[:, :4], o[:, 4], o[:, 5].astype(int)) for o in out]
    >>> spec = DetectorOutputs(outputs, label_map={0: 1, 1: 2}).bind((64, 64))
    >>> raw = np.array([[[1, 2, 30, 40, 0.9, 1], [0, 0, 8, 8, 0.5, 7]]])
    >>> d = spec.postprocess(raw)[0]
    >>> d.labels.tolist(), d.scores.tolist(), spec.dropped
    ([1], [0.9], 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench.detection.decode import Decoder, check_input_size
from dlbench.detection.nms import COCO_MAX_DETECTIONS, Detections, candidate_order, nms
from dlbench.errors import BackendError, ConfigError, DataError

__all__ = [
    "BOX_FORMATS",
    "CONTRACT_KINDS",
    "DetectorOutputs",
    "OutputFields",
    "attach_detection",
    "outputs_to_numpy",
    "pipeline_for_wrapped",
    "to_xyxy",
]

#: box formats a :class:`DetectorOutputs` function may return
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
#: batch of the probe run at wrap time
PROBE_BATCH = 2


#: kinds of :class:`OutputFields` (a declarative outputs function, JSON-able)
CONTRACT_KINDS = ("boxes_scores_labels", "logits_boxes")
#: activations of a ``logits_boxes`` contract's class logits
ACTIVATIONS = ("softmax", "sigmoid", "none")


@dataclass(frozen=True)
class OutputFields:
    """A declarative outputs function: the detector's outputs read by name, so the contract is
    plain data (a JSON file, a result file, a worker job), unlike a Python function.

    Two kinds:

    - ``boxes_scores_labels``: outputs ``boxes`` ``(N, K, 4)``, ``scores`` ``(N, K)`` and
      ``labels`` ``(N, K)`` (an exported detector with its own NMS), and optionally ``valid``
      ``(N,)`` or ``(N, 1)``: how many of the K rows of each image are detections (padded
      outputs such as TensorFlow's combined NMS).
    - ``logits_boxes``: outputs ``logits`` ``(N, Q, C)`` and ``boxes`` ``(N, Q, 4)`` (DETR,
      YOLOS: one box per query); ``activation`` ``softmax`` (with ``no_object``: the last
      class column is "no object" and is dropped after the softmax), ``sigmoid`` or ``none``
      (already probabilities); each query's best class is its label, its probability the score.

    The values are output names: the ONNX graph's output names, or the keys of the dict the
    model returns. A model with one output (no names) cannot be read by name: an error.

    Example:
        >>> import numpy as np
        >>> f = OutputFields("logits_boxes", boxes="pred_boxes", logits="logits", no_object=True)
        >>> out = {"logits": np.array([[[2.0, 0.0, 0.0]]]), "pred_boxes": np.ones((1, 1, 4))}
        >>> [labels.tolist() for _, _, labels in f(out)]
        [[0]]
    """

    kind: str
    boxes: str = "boxes"
    scores: str | None = None
    labels: str | None = None
    valid: str | None = None
    logits: str | None = None
    activation: str = "softmax"
    no_object: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CONTRACT_KINDS:
            raise ConfigError(
                f"Expected the outputs `kind` in {list(CONTRACT_KINDS)}. Received: "
                f"kind={self.kind!r}"
            )
        need = (
            ("boxes", "scores", "labels") if self.kind == CONTRACT_KINDS[0] else ("boxes", "logits")
        )
        for name in need:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"Expected `{name}` (an output name) for outputs of kind {self.kind!r}. "
                    f"Received: {name}={value!r}"
                )
        unused = (
            ("logits", "activation", "no_object")
            if self.kind == CONTRACT_KINDS[0]
            else ("scores", "labels", "valid")
        )
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        extra = [n for n in unused if getattr(self, n) != defaults[n]]
        if extra:
            raise ConfigError(
                f"Unexpected field(s) {extra} for outputs of kind {self.kind!r} (they belong "
                f"to the other kind). Received: {self.to_dict()}"
            )
        if self.valid is not None and (not isinstance(self.valid, str) or not self.valid):
            raise ConfigError(f"Expected `valid` to be an output name. Received: {self.valid!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"Expected `activation` in {list(ACTIVATIONS)}. Received: "
                f"activation={self.activation!r}"
            )
        if not isinstance(self.no_object, bool):
            raise ConfigError(
                f"Expected `no_object` to be a bool. Received: no_object={self.no_object!r}"
            )
        if self.no_object and self.activation != "softmax":
            raise ConfigError(
                "Expected `no_object` only with activation 'softmax' (the \"no object\" "
                f"column of a softmax). Received: activation={self.activation!r}"
            )

    def names(self) -> dict[str, str]:
        """Role -> output name of every output this contract reads."""
        roles = ("boxes", "scores", "labels", "valid", "logits")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The contract as JSON-safe data (what :meth:`DetectorOutputs.from_dict` reads)."""
        out: dict[str, Any] = {"kind": self.kind, **self.names()}
        if self.kind == "logits_boxes":
            out.update(activation=self.activation, no_object=self.no_object)
        return out

    def _get(self, out: Any, role: str) -> np.ndarray:
        name = getattr(self, role)
        if not isinstance(out, Mapping):
            raise DataError(
                f"Expected the detector's outputs by name (its {role} output {name!r}; a model "
                f"with several outputs). Received: {_kind(out)}"
            )
        if name not in out:
            raise DataError(
                f"Expected an output named {name!r} ({role}) among the detector's outputs. "
                f"Received: {sorted(map(str, out))}"
            )
        return np.asarray(out[name])

    def __call__(self, out: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        boxes = self._get(out, "boxes")
        if boxes.ndim != 3 or boxes.shape[-1] != 4:
            raise DataError(
                f"Expected boxes {self.boxes!r} of shape (N, K, 4). Received: {boxes.shape}"
            )
        n, k = boxes.shape[:2]
        if self.kind == "logits_boxes":
            logits = self._get(out, "logits").astype(np.float64)
            if logits.ndim != 3 or logits.shape[:2] != (n, k):
                raise DataError(
                    f"Expected logits {self.logits!r} of shape ({n}, {k}, C) (one row per box "
                    f"of {self.boxes!r}). Received: {logits.shape}"
                )
            if self.activation == "softmax":
                z = np.exp(logits - logits.max(-1, keepdims=True))
                p = z / z.sum(-1, keepdims=True)
            elif self.activation == "sigmoid":
                p = 1.0 / (1.0 + np.exp(-logits))
            else:
                p = logits
            if self.no_object:
                p = p[..., :-1]
            if p.shape[-1] < 1:
                raise DataError(
                    f"Expected at least one class column in logits {self.logits!r}. Received: "
                    f"{logits.shape}"
                )
            scores, labels = p.max(-1), p.argmax(-1)
            return [(boxes[i], scores[i], labels[i]) for i in range(n)]
        scores = self._get(out, "scores")
        labels = self._get(out, "labels")
        for role, a in (("scores", scores), ("labels", labels)):
            if a.shape != (n, k):
                raise DataError(
                    f"Expected {role} {getattr(self, role)!r} of shape ({n}, {k}) (one per box "
                    f"of {self.boxes!r}). Received: {a.shape}"
                )
        counts = [k] * n
        if self.valid is not None:
            valid = self._get(out, "valid")
            if valid.size != n or not np.issubdtype(valid.dtype, np.number):
                raise DataError(
                    f"Expected valid {self.valid!r} with one count per image ({n}). Received: "
                    f"{valid.shape} {valid.dtype}"
                )
            counts = [int(c) for c in valid.reshape(-1)]
            if any(c < 0 or c > k for c in counts):
                raise DataError(
                    f"Expected valid counts in [0, {k}] from {self.valid!r}. Received: {counts}"
                )
        return [(boxes[i, :c], scores[i, :c], labels[i, :c]) for i, c in enumerate(counts)]


#: keys of a contract (:meth:`DetectorOutputs.from_dict`) besides ``outputs``
CONTRACT_KEYS = (
    "box_format",
    "normalized",
    "label_map",
    "score_threshold",
    "iou_threshold",
    "pre_nms_top_k",
    "max_detections",
    "stride",
    "input_size",
)
#: keys :meth:`DetectorOutputs.to_dict` records that a contract need not give (they are read
#: back without effect: a result file's record is a valid contract)
RECORD_ONLY_KEYS = ("kind", "fn", "num_classes", "dropped_unmapped")


def to_xyxy(
    boxes: np.ndarray, box_format: str, normalized: bool, hw: tuple[int, int]
) -> np.ndarray:
    """``(K, 4)`` boxes in ``box_format`` (normalised to ``[0, 1]`` of ``hw`` or in pixels) as
    xyxy in input pixels (float64)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if box_format == "xywh":
        b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    elif box_format == "cxcywh":
        half = b[:, 2:] / 2.0
        b = np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)
    if normalized:
        h, w = hw
        b = b * np.array([w, h, w, h], dtype=np.float64)
    return b


def _label_map(label_map: Any) -> dict[int, int] | None:
    if label_map is None:
        return None
    items: Any
    if isinstance(label_map, Mapping):
        items = label_map.items()
    elif isinstance(label_map, Sequence) and not isinstance(label_map, (str, bytes)):
        items = enumerate(label_map)
    else:
        items = None
    out: dict[int, int] = {}
    ok = items is not None
    for k, v in items or ():
        if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (k, v)):
            ok = False
            break
        if k < 0:
            ok = False
            break
        out[int(k)] = int(v)
    if not ok or not out:
        raise ConfigError(
            "Expected `label_map` to map model class indices (non-negative ints) to dataset "
            "category ids (ints): a dict such as {0: 1, 1: 2}, or a list whose i-th item is "
            f"class i's category id. Received: label_map={label_map!r}"
        )
    return out


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Expected `{name}` to be a positive int. Received: {name}={value!r}")
    return int(value)


def _threshold(
    name: str, value: Any, lo: float, hi: float, *, finite: bool = False
) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not lo <= v <= hi or (finite and not math.isfinite(v)):
        what = "to be a finite number" if finite else f"in [{lo}, {hi}]"
        raise ConfigError(f"Expected `{name}` {what} or None. Received: {name}={value!r}")
    return v


def _kind(y: Any) -> str:
    if isinstance(y, Mapping):
        return f"dict with keys {sorted(map(str, y))[:6]}"
    if isinstance(y, (tuple, list)):
        return f"{type(y).__name__} of {[type(v).__name__ for v in y][:6]}"
    shape = getattr(y, "shape", None)
    return f"{type(y).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


@dataclass
class DetectorOutputs:
    """How to read a wrapped detector's outputs (see the module docs for the contract).

    Args:
        fn: ``fn(outputs) -> one item per image``; ``outputs`` are NumPy (an array, or a dict /
            tuple / list of arrays as the model returns them); an item is
            ``{"boxes", "scores", "labels"}`` or ``(boxes, scores, labels)``.
        box_format: ``xyxy``, ``xywh`` or ``cxcywh``.
        normalized: Boxes in ``[0, 1]`` of the model input's width and height (else pixels).
        label_map: Model class index -> dataset category id (a dict, or a list: item i is class
            i's id); unlisted labels are dropped. None: labels are the dataset's ``0..C-1``.
        score_threshold: Keep only scores strictly greater (None: keep all).
        iou_threshold: Class-aware NMS threshold (None: no NMS).
        pre_nms_top_k: Best candidates NMS looks at (None: all; NMS compares every pair of
            them, so thousands of raw candidates cost memory and time).
        max_detections: Detections kept per image (COCO: 100).
        stride: The detector's largest stride: the input size must be a multiple of it.
        input_size: ``(height, width)`` of the model input; ``wrap`` sets it from
            ``input_shape`` (:meth:`bind`).
    """

    fn: Callable[[Any], Sequence[Any]]
    box_format: str = "xyxy"
    normalized: bool = False
    label_map: Mapping[int, int] | Sequence[int] | None = None
    score_threshold: float | None = None
    iou_threshold: float | None = None
    pre_nms_top_k: int | None = 1000
    max_detections: int = COCO_MAX_DETECTIONS
    stride: int | None = None
    input_size: tuple[int, int] | None = None
    #: detections dropped because ``label_map`` does not list their label, since the last
    #: :meth:`reset_counts` (the accuracy pass resets it after its warm-up call)
    dropped: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(
                "Expected `fn` to be a function of the model's outputs returning one "
                f"(boxes, scores, labels) per image. Received: {type(self.fn).__name__}"
            )
        if self.box_format not in BOX_FORMATS:
            raise ConfigError(
                f"Expected `box_format` in {list(BOX_FORMATS)}. Received: "
                f"box_format={self.box_format!r}"
            )
        if not isinstance(self.normalized, bool):
            raise ConfigError(
                f"Expected `normalized` to be a bool. Received: normalized={self.normalized!r}"
            )
        self.label_map = _label_map(self.label_map)
        self.score_threshold = _threshold(
            "score_threshold", self.score_threshold, -math.inf, math.inf, finite=True
        )
        self.iou_threshold = _threshold("iou_threshold", self.iou_threshold, 0.0, 1.0)
        self.max_detections = _positive_int("max_detections", self.max_detections)
        self.pre_nms_top_k = _positive_int("pre_nms_top_k", self.pre_nms_top_k, allow_none=True)
        self.stride = _positive_int("stride", self.stride, allow_none=True)
        if self.input_size is not None:
            self.input_size = self._checked_size(self.input_size)

    def _checked_size(self, size: Any) -> tuple[int, int]:
        return check_input_size(size, (self.stride or 1,))

    # -- binding to the model input -------------------------------------------------------------

    def bind(self, input_size: int | tuple[int, int]) -> DetectorOutputs:
        """A copy for a model input of ``input_size`` (``(height, width)``).

        Raises:
            ConfigError: the size is not a positive multiple of ``stride``, or differs from an
                ``input_size`` given before.
        """
        hw = self._checked_size(input_size)
        if self.input_size is not None and tuple(self.input_size) != hw:
            raise ConfigError(
                f"Expected the detector input size {tuple(self.input_size)} given in "
                f"DetectorOutputs to match the wrapped input_shape. Received: {hw}"
            )
        return dataclasses.replace(self, input_size=hw)

    @property
    def hw(self) -> tuple[int, int]:
        if self.input_size is None:
            raise ConfigError(
                "Expected DetectorOutputs bound to the model input size (wrap(..., "
                "input_shape=(3, H, W), detection=...) does it). Received: input_size=None"
            )
        return (int(self.input_size[0]), int(self.input_size[1]))

    @property
    def num_classes(self) -> int | None:
        """Classes the label map lists (None without one: the dataset's labels are used)."""
        return None if self.label_map is None else len(self.label_map)

    # -- the dataset ----------------------------------------------------------------------------

    def category_mapper(self, dataset: Any) -> Callable[[np.ndarray], np.ndarray]:
        """The function from kept labels to ``dataset``'s category ids, checked against it.

        Raises:
            ConfigError: a ``label_map`` value that is not one of the dataset's category ids, or
                no label map for a dataset that has no contiguous labels.
        """
        if self.label_map is None:
            mapper = getattr(dataset, "label_to_category_id", None)
            if mapper is None:
                raise ConfigError(
                    "Expected a `label_map` (model class index -> category id) for dataset "
                    f"{dataset.info.name!r}, which has no contiguous labels. Received: None"
                )
            return mapper
        cats = sorted(int(c["id"]) for c in dataset.coco_ground_truth().get("categories") or [])
        bad = sorted({v for v in self.label_map.values() if v not in cats})
        if bad:
            raise ConfigError(
                f"Expected `label_map` values among the category ids of {dataset.info.name!r} "
                f"{cats}. Received: {bad} (label_map={self.label_map})"
            )
        keys = np.array(sorted(self.label_map), dtype=np.int64)
        values = np.array([self.label_map[int(k)] for k in keys], dtype=np.int64)

        def to_category(labels: np.ndarray) -> np.ndarray:
            lab = np.asarray(labels, dtype=np.int64)
            pos = np.searchsorted(keys, lab)
            return values[pos]

        return to_category

    # -- post-processing ------------------------------------------------------------------------

    def _items(self, raw: Any) -> list[Any]:
        try:
            items = self.fn(raw)
        except (DataError, ConfigError):
            raise
        except Exception as exc:
            text = (str(exc).strip().splitlines() or [""])[0]
            raise DataError(
                f"Expected the detector's outputs to match its outputs function "
                f"{_fn_name(self.fn)!r}. It failed on {_kind(raw)}: "
                f"{type(exc).__name__}: {text}"
            ) from exc
        if isinstance(items, Mapping) or not isinstance(items, Sequence) or isinstance(items, str):
            raise DataError(
                f"Expected the outputs function {_fn_name(self.fn)!r} to return a list with one "
                f"(boxes, scores, labels) per image. Received: {_kind(items)}"
            )
        return list(items)

    def _unpack(self, item: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        where = f"image {k} from the outputs function {_fn_name(self.fn)!r}"
        if isinstance(item, Mapping):
            missing = [key for key in ("boxes", "scores", "labels") if key not in item]
            if missing:
                raise DataError(
                    f"Expected keys 'boxes', 'scores', 'labels' for {where}. Received: "
                    f"{_kind(item)}"
                )
            parts = (item["boxes"], item["scores"], item["labels"])
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            parts = tuple(item)
        else:
            raise DataError(
                f"Expected (boxes, scores, labels) or a dict of them for {where}. Received: "
                f"{_kind(item)}"
            )
        boxes, scores, labels = (np.asarray(p) for p in parts)
        if boxes.ndim == 1 and boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise DataError(f"Expected boxes of shape (K, 4) for {where}. Received: {boxes.shape}")
        n = boxes.shape[0]
        for name, a in (("scores", scores), ("labels", labels)):
            if a.shape != (n,):
                raise DataError(
                    f"Expected {name} of shape ({n},) (one per box) for {where}. "
                    f"Received: {a.shape}"
                )
        if not np.issubdtype(scores.dtype, np.number) or np.isnan(scores.astype(np.float64)).any():
            bad = (
                np.flatnonzero(np.isnan(scores.astype(np.float64)))[:5].tolist()
                if np.issubdtype(scores.dtype, np.number)
                else scores.dtype
            )
            raise DataError(f"Expected scores without NaN for {where}. Received NaN at {bad}")
        if not np.issubdtype(boxes.dtype, np.number) or not np.isfinite(boxes).all():
            raise DataError(f"Expected finite box coordinates for {where}. Received NaN/inf")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            lf = labels.astype(np.float64)
            if not np.isfinite(lf).all() or (lf != np.round(lf)).any():
                raise DataError(
                    f"Expected integer class labels for {where}. Received: {labels[:5]}"
                )
        labels = labels.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise DataError(
                f"Expected non-negative class labels for {where}. Received min {labels.min()}"
            )
        return boxes.astype(np.float64), scores.astype(np.float64), labels

    def postprocess(self, raw: Any) -> list[Detections]:
        """Kept detections per image (boxes xyxy in input pixels, labels the model's classes).

        ``Detections.indices`` index the items the outputs function returned for the image.

        Raises:
            DataError: the outputs function fails on the outputs, or returns something else
                than one ``(boxes (K, 4), scores (K,), labels (K,))`` per image; NaN scores or
                boxes; negative or non-integer labels.
        """
        h, w = self.hw
        out = []
        for k, item in enumerate(self._items(raw)):
            boxes, scores, labels = self._unpack(item, k)
            xyxy = to_xyxy(boxes, self.box_format, self.normalized, (h, w))
            inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
            if inverted.any():
                first = boxes[int(np.flatnonzero(inverted)[0])].tolist()
                raise DataError(
                    f"Expected boxes with x1 <= x2 and y1 <= y2 once read as {self.box_format}"
                    f"{' (normalized)' if self.normalized else ''} for image {k} from the "
                    f"outputs function {_fn_name(self.fn)!r}. Received {int(inverted.sum())} "
                    f"inverted, first {first}: check box_format"
                )
            xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0.0, float(w))
            xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0.0, float(h))
            index = np.arange(len(scores), dtype=np.int64)
            if self.label_map is not None:
                listed = np.isin(labels, np.fromiter(self.label_map, np.int64))
                self.dropped += int((~listed).sum())
                xyxy, scores, labels, index = (
                    xyxy[listed],
                    scores[listed],
                    labels[listed],
                    index[listed],
                )
            thr = -math.inf if self.score_threshold is None else self.score_threshold
            order = candidate_order(scores, thr)  # by score, ties: lower index first
            if self.iou_threshold is None:
                sel = order[: self.max_detections]
            else:
                if self.pre_nms_top_k is not None:
                    order = order[: self.pre_nms_top_k]
                kept = nms(
                    xyxy[order],
                    scores[order],
                    labels[order],
                    self.iou_threshold,
                    thr,
                    self.max_detections,
                )
                sel = order[kept.indices]
            out.append(Detections(xyxy[sel], scores[sel], labels[sel], index[sel]))
        return out

    def reset_counts(self) -> None:
        """Start counting dropped detections afresh."""
        self.dropped = 0

    @property
    def declarative(self) -> bool:
        """Whether the outputs function is an :class:`OutputFields` (the contract is data)."""
        return isinstance(self.fn, OutputFields)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "the contract") -> DetectorOutputs:
        """A contract from data (a JSON file's): ``outputs`` (the :class:`OutputFields`
        fields: ``kind``, output names, ``activation``, ``no_object``) plus any of
        :data:`CONTRACT_KEYS`. The record :meth:`to_dict` writes reads back as the same
        contract.

        Example:
            >>> c = DetectorOutputs.from_dict({"outputs": {"kind": "boxes_scores_labels",
            ...     "boxes": "boxes", "scores": "scores", "labels": "labels"},
            ...     "label_map": {"0": 1, "1": 2}})
            >>> c.label_map, c.fn.kind
            ({0: 1, 1: 2}, 'boxes_scores_labels')

        Raises:
            ConfigError: not a mapping, no ``outputs``, an unknown key, a bad value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"Expected {where} to be a JSON object with 'outputs'. Received: "
                f"{type(data).__name__}"
            )
        unknown = sorted(set(data) - {"outputs", *CONTRACT_KEYS, *RECORD_ONLY_KEYS})
        if unknown:
            raise ConfigError(
                f"Expected keys among {['outputs', *CONTRACT_KEYS]} in {where}. Received "
                f"unknown key(s) {unknown}"
            )
        fields_ = data.get("outputs")
        if not isinstance(fields_, Mapping):
            raise ConfigError(
                f"Expected 'outputs' in {where}: an object such as {{\"kind\": "
                f'"logits_boxes", "logits": "logits", "boxes": "pred_boxes"}}. '
                f"Received: {fields_!r}"
            )
        allowed = {f.name for f in dataclasses.fields(OutputFields)}
        bad = sorted(set(fields_) - allowed)
        if bad:
            raise ConfigError(
                f"Expected 'outputs' keys among {sorted(allowed)} in {where}. Received unknown "
                f"key(s) {bad}"
            )
        if "kind" not in fields_:
            raise ConfigError(
                f"Expected 'outputs.kind' in {list(CONTRACT_KINDS)} in {where}. Received: none"
            )
        label_map = data.get("label_map")
        if isinstance(label_map, Mapping):  # JSON object keys are strings
            label_map = {_int_key(k): v for k, v in label_map.items()}
        kw = {k: data[k] for k in CONTRACT_KEYS if k in data and k != "label_map"}
        if kw.get("input_size") is not None:
            kw["input_size"] = tuple(kw["input_size"])
        return cls(OutputFields(**fields_), label_map=label_map, **kw)

    @classmethod
    def from_json(cls, path: str | Any) -> DetectorOutputs:
        """:meth:`from_dict` of a JSON file.

        Raises:
            ConfigError: the file is missing, not JSON, or not a contract.
        """
        import json
        from pathlib import Path

        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(
                f"Expected a readable detection contract file. Received: {str(p)!r} "
                f"({exc.strerror or exc})"
            ) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"Expected the detection contract {str(p)!r} to be JSON. Received: {exc}"
            ) from None
        return cls.from_dict(data, where=f"the detection contract {str(p)!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (for result files)."""
        return {
            "kind": "outputs_fields" if self.declarative else "outputs_fn",
            "fn": _fn_name(self.fn),
            **({"outputs": self.fn.to_dict()} if self.declarative else {}),
            "box_format": self.box_format,
            "normalized": self.normalized,
            "label_map": None
            if self.label_map is None
            else {str(k): v for k, v in sorted(self.label_map.items())},
            "num_classes": self.num_classes,
            "input_size": None if self.input_size is None else list(self.hw),
            "stride": self.stride,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "pre_nms_top_k": self.pre_nms_top_k,
            "max_detections": self.max_detections,
            "dropped_unmapped": self.dropped,
        }


def _int_key(key: Any) -> Any:
    """A JSON object key ``"3"`` as the int 3 (other keys unchanged: the label-map check
    reports them)."""
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    return key


def _fn_name(fn: Any) -> str:
    if isinstance(fn, OutputFields):
        return f"OutputFields({fn.kind})"
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def outputs_to_numpy(
    y: Any, is_tensor: Callable[[Any], bool], convert: Callable[[Any], np.ndarray], name: str
) -> Any:
    """A detector's native outputs as NumPy, keeping their structure: a tensor becomes an array,
    a mapping (Hugging Face ``ModelOutput`` included) a dict, a tuple / list a list; None
    entries of a mapping are left out.

    Raises:
        BackendError: a leaf that is neither a tensor nor a NumPy array.
    """
    if isinstance(y, np.ndarray):
        return y
    if is_tensor(y):
        return convert(y)
    if isinstance(y, Mapping):
        return {
            k: outputs_to_numpy(v, is_tensor, convert, name) for k, v in y.items() if v is not None
        }
    if isinstance(y, (tuple, list)):
        return [outputs_to_numpy(v, is_tensor, convert, name) for v in y]
    raise BackendError(
        f"Expected detector {name!r} to return tensors, or a dict / tuple / list of them. "
        f"Received: {_kind(y)}"
    )


def _decoder_run(decoder: Decoder, postprocess: Callable[[Any, np.ndarray], list]) -> Callable:
    def run(_: Any, raw: Any) -> list:
        if not isinstance(raw, np.ndarray):
            raise DataError(
                f"Expected the detector to return one raw head tensor of shape (N, "
                f"{decoder.num_rows}, {decoder.row_width}) for its {decoder.kind} Decoder. "
                f"Received: {_kind(raw)}"
            )
        return postprocess(decoder, raw)

    return run


def pipeline_for_wrapped(
    detection: DetectorOutputs | Decoder, backend: Any, input_size: tuple[int, int]
) -> Any:
    """The :class:`~dlbench.execution.scenarios.detection.DetectionPipeline` of a wrapped
    detector on ``backend`` (a Backend) for a model input of ``input_size`` (H, W).

    Raises:
        ConfigError: ``detection`` is neither a :class:`DetectorOutputs` nor a
            :class:`~dlbench.detection.Decoder`; the input size is not a multiple of the
            stride; a Decoder built for another input size.
    """
    from dlbench.execution.scenarios.detection import DetectionPipeline, pipeline_for_decoder

    mode = (getattr(backend, "options", None) or {}).get("postprocess", "native")
    if isinstance(detection, DetectorOutputs):
        bound = detection.bind(input_size)
        note = None
        if mode != "numpy":
            note = (
                f"backend option postprocess={mode!r} applies to Decoder heads: a "
                "DetectorOutputs detector is post-processed by its outputs function and the "
                "float64 NumPy reference"
            )
        return DetectionPipeline(
            bound,
            lambda spec, raw: spec.postprocess(raw),
            "numpy",
            "dlbench.detection.wrapped (the user's outputs function, float64 NumPy NMS)",
            note,
            asked=mode,
        )
    if isinstance(detection, Decoder):
        if tuple(detection.hw) != tuple(input_size):
            raise ConfigError(
                f"Expected the Decoder's input size {detection.hw} to match the wrapped "
                f"input_shape. Received: input size {tuple(input_size)}"
            )
        pipe = pipeline_for_decoder(detection, backend.name, mode)
        pipe.postprocess = _decoder_run(detection, pipe.postprocess)
        return pipe
    raise ConfigError(
        "Expected `detection` to be a dlbench.detection.DetectorOutputs (a function of the "
        "outputs) or a dlbench.detection.Decoder (a raw head in the zoo's layout). Received: "
        f"{type(detection).__name__}"
    )


def attach_detection(model: Any, detection: Any) -> Any:
    """Give wrapped ``model`` its detection pipeline (``model.detection``) and run one probe
    batch of zeros through the model and the post-processing.

    Raises:
        ConfigError: no ``input_shape`` (a detector's input size must be declared), a size that
            is not a multiple of the stride, or a ``detection`` of another kind.
        DataError: the outputs do not match the declared decode.
    """
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise ConfigError(
            "Expected `input_shape=(3, H, W)` for a detector (the letterboxed input size of the "
            f"dataset, e.g. image_size=H). Received: input_shape={shape!r}"
        )
    model.detection = pipeline_for_wrapped(detection, model.backend, (shape[1], shape[2]))
    probe = int(getattr(model, "fixed_batch", None) or PROBE_BATCH)  # an ONNX file may fix it
    batch = np.zeros((probe, *shape), np.float32)
    try:
        raw = model.predict(batch)
    except (BackendError, DataError):
        raise
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        raise BackendError(
            f"Detector {model.name!r} ({model.backend.name}) fails on inputs of shape "
            f"{batch.shape}: {type(exc).__name__}: {text}. Check input_shape."
        ) from exc
    dets = model.detection.run(raw)
    if isinstance(model.detection.decoder, DetectorOutputs):
        model.detection.decoder.reset_counts()  # the probe's zeros do not count
    if len(dets) != probe:
        raise DataError(
            f"Expected one detection list per image from detector {model.name!r} (a probe "
            f"batch of {probe}). Received: {len(dets)}"
        )
    return model


def detector_settings(model: Any, base: dict[str, Any]) -> dict[str, Any]:
    """A wrapped detector's settings: its own plus the task and the post-processing."""
    pipe = getattr(model, "detection", None)
    if pipe is None:
        return base
    return {**base, "task": "detection", "postprocess": pipe.describe()}
