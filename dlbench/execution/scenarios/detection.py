"""Detection in the benchmark run: the post-processing pipeline of a backend, the accuracy
scenario of a detector (COCO stats and the timing split), the task check and the run preset.

- :class:`DetectionPipeline`: a detector's :class:`~dlbench.detection.Decoder` and the
  post-processing one backend runs, ``native`` (``dlbench.backends.<fw>.postprocess``: torch
  tensors, TensorFlow's combined NMS, the ONNX ``NonMaxSuppression`` op, JAX's fixed-size NMS)
  or ``numpy`` (the float64 reference); the backend option ``postprocess`` picks it.
- :func:`detection_accuracy`: the split one image at a time through pre-processing (decode +
  letterbox: the dataset's ``get_batch``), the model (host NumPy in, host NumPy out) and the
  post-processing; the kept boxes go back through each image's letterbox into original pixels
  (:func:`~dlbench.detection.to_coco_results`) and :func:`~dlbench.metrics.coco.coco_evaluate`
  gives the 12 COCO stats. Every stage is timed per image: raw samples and percentiles of
  ``preprocess``, ``model``, ``postprocess`` and ``end_to_end`` (their sum) in the cell's
  ``stages``.
- :func:`check_task`: a classification model on a detection dataset (or the reverse) is a
  :class:`~dlbench.errors.ConfigError` before any worker starts.
- :data:`TASK_PRESETS`: what ``dlbench run --task detection`` runs.

Example:
    >>> from dlbench import zoo
    >>> spec = zoo.get("fcos_mobilenet_v2", num_classes=4, input_shape=(3, 64, 64))
    >>> p = pipeline_for(spec, "numpy")
    >>> p.mode, p.decoder.kind
    ('numpy', 'points')
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError, DataError
from dlbench.execution.scenarios._common import validity

__all__ = [
    "POSTPROCESS_MODES",
    "STAGES",
    "TASK_PRESETS",
    "DetectionPipeline",
    "apply_task_preset",
    "check_model_task",
    "check_task",
    "detection_accuracy",
    "model_task",
    "pipeline_for",
    "pipeline_for_decoder",
]

#: values of the backend option ``postprocess``
POSTPROCESS_MODES = ("native", "numpy")
#: the timed stages of one image, in order (``end_to_end`` is their sum)
STAGES = ("preprocess", "model", "postprocess", "end_to_end")

#: ``dlbench run --task <task>``: the run's defaults (flags given on the command line win)
TASK_PRESETS: dict[str, dict[str, Any]] = {
    "detection": {
        "model": "fcos_mobilenet_v2",
        "dataset": "shapes",
        "scenarios": ["accuracy", "latency", "throughput"],
        "batch_sizes": [8],
        "accuracy_batch_size": 1,  # a detector's accuracy pass runs one image at a time
        "accuracy_limit": 64,
        "parity_samples": 4,
        "stop_rule": {"min_time": 1.0, "max_time": 5.0, "min_iters": 5},
    },
}


#: datasets whose task is detection (their accuracy pass runs one image at a time)
DETECTION_DATASETS = ("coco", "shapes")


def per_image_accuracy(config: Any) -> Any:
    """``config`` with ``accuracy_batch_size=1`` on a detection dataset: a detector's accuracy
    pass runs one image at a time (every stage timed per image), so its cell is batch 1 and
    the memory check sizes it as such."""
    if config.dataset in DETECTION_DATASETS and config.accuracy_batch_size != 1:
        from dataclasses import replace

        return replace(config, accuracy_batch_size=1)
    return config


def apply_task_preset(
    task: str, data: dict[str, Any], *, given: set[str], given_stop: set[str] = frozenset()
) -> dict[str, Any]:
    """``data`` (a BenchmarkConfig dict) with :data:`TASK_PRESETS` ``[task]`` filled in
    wherever the command line did not set the key (``given``, ``given_stop``: the keys it set).

    Raises:
        ConfigError: an unknown task.
    """
    if task not in TASK_PRESETS:
        raise ConfigError(f"Expected --task in {sorted(TASK_PRESETS)}. Received: {task!r}")
    out = dict(data)
    for key, value in TASK_PRESETS[task].items():
        if key == "stop_rule":
            rule = dict(out.get("stop_rule") or {})
            rule.update({k: v for k, v in value.items() if k not in given_stop})
            out["stop_rule"] = rule
        elif key not in given:
            out[key] = list(value) if isinstance(value, list) else value
    return out


@dataclass
class DetectionPipeline:
    """A detector's decoding and post-processing on one backend.

    Attributes:
        decoder: The detector's :class:`~dlbench.detection.Decoder` (thresholds included).
        postprocess: ``postprocess(decoder, raw) -> list[Detections]``.
        mode: ``"native"`` or ``"numpy"`` (the float64 reference).
        module: Where ``postprocess`` comes from.
        note: Why the mode differs from the one asked for, if it does.
        keep_results: Put the COCO results the accuracy pass evaluated in its record
            (``coco_results``: image_id, bbox xywh in original pixels, score, category_id).
    """

    decoder: Any
    postprocess: Callable[[Any, np.ndarray], list]
    mode: str
    module: str
    note: str | None = None
    asked: str = field(default="native")
    keep_results: bool = False

    def run(self, raw: np.ndarray) -> list:
        """Kept detections per image of a raw output batch ``(N, rows, cols)``."""
        return self.postprocess(self.decoder, raw)

    def describe(self) -> dict[str, Any]:
        """JSON-safe record for the result file (the backend's settings)."""
        return {
            "mode": self.mode,
            "asked": self.asked,
            "module": self.module,
            "note": self.note,
            "decoder": self.decoder.to_dict(),
        }


def _reference(decoder: Any, raw: np.ndarray) -> list:
    return decoder.postprocess(raw)


def pipeline_for(
    spec: Any, backend: str, mode: str = "native", **decoder_options: Any
) -> DetectionPipeline | None:
    """The pipeline of detector ``spec`` on ``backend`` (None for a model that is no detector).

    ``backend`` may be composite (``torch>onnxruntime``): the framework that runs the model
    (the last one) post-processes. A backend without a ``postprocess`` module uses the
    reference, and the pipeline's ``note`` says so.

    Raises:
        ConfigError: ``mode`` is not one of :data:`POSTPROCESS_MODES`, or the spec's output
            does not match its declared decoder.
    """
    if model_task(spec) != "detection":
        return None
    if mode not in POSTPROCESS_MODES:
        raise ConfigError(
            f"Expected the option postprocess in {POSTPROCESS_MODES}. Received: {mode!r}"
        )
    from dlbench.model.zoo.detection import decoder_for

    return pipeline_for_decoder(decoder_for(spec, **decoder_options), backend, mode)


def pipeline_for_decoder(decoder: Any, backend: str, mode: str = "native") -> DetectionPipeline:
    """The pipeline of ``decoder`` (a :class:`~dlbench.detection.Decoder`) on ``backend``
    (see :func:`pipeline_for`; a wrapped detector with a Decoder uses it too).

    Raises:
        ConfigError: ``mode`` is not one of :data:`POSTPROCESS_MODES`.
    """
    if mode not in POSTPROCESS_MODES:
        raise ConfigError(
            f"Expected the option postprocess in {POSTPROCESS_MODES}. Received: {mode!r}"
        )
    framework = backend.split(">")[-1]
    reference = "dlbench.detection (float64 NumPy reference)"
    if mode == "numpy" or framework == "numpy":
        return DetectionPipeline(decoder, _reference, "numpy", reference, asked=mode)
    name = f"dlbench.backends.{framework}.postprocess"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if exc.name not in (name, f"dlbench.backends.{framework}"):
            raise  # the module exists but its framework is broken: say so, do not hide it
        note = f"backend {framework!r} has no native post-processing ({name}); the NumPy "
        note += "reference post-processes its outputs"
        return DetectionPipeline(decoder, _reference, "numpy", reference, note, asked=mode)
    return DetectionPipeline(decoder, module.postprocess, "native", name, asked=mode)


def model_task(spec: Any) -> str:
    """``spec.metadata["task"]`` (a model that does not say is a classifier)."""
    meta = getattr(spec, "metadata", None) or {}
    return str(meta.get("task") or "classification")


def check_task(model_name: str, spec: Any, dataset_info: Any) -> None:
    """Refuse a detector on a dataset of another task, and any other model on a detection
    dataset, before any worker starts.

    Raises:
        ConfigError: naming the model's task and the dataset's.
    """
    mt, dt = model_task(spec), str(getattr(dataset_info, "task", "") or "classification")
    if (mt == "detection") == (dt == "detection"):
        return
    if mt == "detection":
        raise ConfigError(
            f"Expected a detection dataset (coco, shapes) for "
            f"the detection model {model_name!r}. Received: dataset {dataset_info.name!r} "
            f"(task {dt})"
        )
    raise ConfigError(
        f"Expected a detection model (e.g. fcos_mobilenet_v2, retinanet_mobilenet_v2) for the "
        f"detection dataset {dataset_info.name!r}. Received: model {model_name!r} (task {mt})"
    )


def check_model_task(model: str, dataset_info: Any) -> None:
    """:func:`check_task` for the run's ``model`` (a zoo name or a saved spec ``.json``), read
    before the model is built for the dataset; a model whose task cannot be read here (an
    ONNX file, a zoo entry that does not build with its defaults) is left to the later checks.

    Raises:
        ConfigError: the model's task is not the dataset's.
    """
    from dlbench import zoo

    spec = None
    if model.endswith(".json"):
        from dlbench.model.spec import ModelSpec

        try:
            spec = ModelSpec.load(model)
        except Exception:  # the runner's own load says what is wrong with the file
            return
    elif model in zoo.names():
        try:
            spec = zoo.get(model)
        except Exception:
            return
    if spec is not None:
        check_task(model, spec, dataset_info)


def _ground_truth(dataset: Dataset, image_ids: list[int]) -> dict[str, Any]:
    """The dataset's COCO ground truth cut to ``image_ids`` (the images evaluated)."""
    gt = dataset.coco_ground_truth()
    keep = set(image_ids)
    if len(keep) == len(gt.get("images") or []):
        return gt
    return {
        **gt,
        "images": [im for im in gt["images"] if int(im["id"]) in keep],
        "annotations": [a for a in gt["annotations"] if int(a["image_id"]) in keep],
    }


def _stage_record(samples: list[float]) -> dict[str, Any]:
    from dlbench.analysis.stats import summarize

    return {"samples_s": [float(s) for s in samples], "stats": summarize(samples)}


def detection_accuracy(
    model: Any,
    dataset: Dataset,
    *,
    pipeline: DetectionPipeline,
    limit: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The split (or its first ``limit`` images) through model + post-processing, COCO stats.

    One image at a time, each stage timed (see the module docs); the first image is run once
    before the measured pass (its time is ``first_call_s``), so a compile or a cache warm-up
    is not a sample. Validity: at least one image evaluated, on real (not synthetic) data.

    Raises:
        DataError: the dataset has no COCO ground truth, or the detector's classes do not
            match the dataset's.
    """
    from dlbench.detection import to_coco_results
    from dlbench.metrics.coco import STAT_KEYS, coco_evaluate

    if not hasattr(dataset, "coco_ground_truth"):
        raise DataError(
            f"Expected a detection dataset with COCO ground truth (coco, shapes). Received: "
            f"{dataset.info.name!r}"
        )
    classes = dataset.info.num_classes
    # a wrapped detector's outputs function: its label map against the dataset's category ids
    mapper = getattr(pipeline.decoder, "category_mapper", None)
    if mapper is not None:
        to_category = mapper(dataset)
    else:
        if classes and pipeline.decoder.num_classes != classes:
            raise DataError(
                f"Expected a detector with {classes} classes for {dataset.info.name!r}. "
                f"Received: {pipeline.decoder.num_classes} classes"
            )
        to_category = getattr(dataset, "label_to_category_id", None)
    want = getattr(model, "input_shape", None)
    if want is not None and tuple(dataset.info.input_shape) != tuple(want):
        raise DataError(
            f"Expected {dataset.info.name!r} letterboxed to the detector's input {tuple(want)} "
            f"(load it with image_size={want[-1]}). Received: images of shape "
            f"{tuple(dataset.info.input_shape)}"
        )
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    first_call = None
    if n:
        t0 = clock()
        pipeline.run(model.predict(dataset.get_batch([0]).inputs))
        first_call = clock() - t0
        reset = getattr(pipeline.decoder, "reset_counts", None)
        if reset is not None:  # a wrapped detector counts dropped detections: the pass's own
            reset()
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    parts: list[dict[str, np.ndarray]] = []
    image_ids: list[int] = []
    kept = 0
    start = clock()
    for i in range(n):
        t0 = clock()
        batch = dataset.get_batch([i])
        t1 = clock()
        raw = model.predict(batch.inputs)
        t2 = clock()
        dets = pipeline.run(raw)
        t3 = clock()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            times[stage].append(dt)
        kept += sum(len(d) for d in dets)
        parts.append(to_coco_results(dets, batch.targets, to_category))
        image_ids.extend(int(t["image_id"]) for t in batch.targets)
    wall = clock() - start
    metrics: dict[str, Any] = {}
    if n:
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="coco_evaluate.. received no detections")
            stats = coco_evaluate(_ground_truth(dataset, image_ids), merged, curves=False)
        metrics = {k: float(stats[k]) for k in STAT_KEYS}
        metrics["per_category"] = stats["per_category"]
        metrics["detections"] = int(kept)
    reasons, notes = [], []
    if dataset.info.synthetic:
        reasons.append("synthetic data: accuracy on random inputs and labels means nothing")
    if n == 0:
        reasons.append("no samples were evaluated")
    if n < len(dataset):
        notes.append(f"evaluated {n} of the split's {len(dataset)} images")
    notes.append("detection: one image at a time, each stage timed per image")
    if pipeline.note:
        notes.append(pipeline.note)
    e2e = float(np.sum(times["end_to_end"])) if n else 0.0
    record: dict[str, Any] = {
        "timing": None,
        "metrics": metrics,
        "evaluated_samples": n,
        "eval_wall_time_s": wall,
        "stages": {s: _stage_record(v) for s, v in times.items()} if n else {},
        "pipeline": {
            "batch_size": 1,
            "first_call_s": first_call,
            "throughput": (n / e2e) if e2e > 0 else None,
            "postprocess": pipeline.describe(),
        },
        "validity": validity(reasons, notes, min_samples=1, requires_real_data=True),
    }
    if pipeline.keep_results and n:
        record["coco_results"] = {k: np.asarray(v).tolist() for k, v in merged.items()}
    return record


def stage_medians(cell: Mapping[str, Any]) -> dict[str, float | None]:
    """Median seconds per image of each stage of a detection accuracy cell."""
    stages = cell.get("stages") or {}
    return {s: ((stages.get(s) or {}).get("stats") or {}).get("median") for s in STAGES}
