"""The ``accuracy`` scenario: the whole split through the model and the task's metrics."""

from __future__ import annotations

import time
from typing import Any

from dlbench.data.dataset import Dataset
from dlbench.errors import ConfigError
from dlbench.execution.scenarios._common import validity


def accuracy(
    model: Any,
    dataset: Dataset,
    *,
    batch_size: int,
    limit: int | None = None,
    detection: Any = None,
) -> dict[str, Any]:
    """The whole split (or its first ``limit`` samples) through the model and the metrics.

    Validity: at least one sample evaluated, on real (not synthetic) data. Evaluating only the
    first ``limit`` samples is a note.

    A detector comes with its post-processing (``detection``: a
    :class:`~dlbench.execution.scenarios.detection.DetectionPipeline`, the worker's hook): the
    images go through model and post-processing one at a time, and the metrics are the 12 COCO
    stats (:func:`~dlbench.execution.scenarios.detection.detection_accuracy`).
    """
    from dlbench.metrics.evaluate import evaluate_outputs

    if detection is None:  # a wrapped detector carries its own (dlbench.detection.wrapped)
        detection = getattr(model, "detection", None)
    if detection is not None:
        from dlbench.execution.scenarios.detection import detection_accuracy

        return detection_accuracy(model, dataset, pipeline=detection, limit=limit)
    if dataset.info.task == "detection":
        raise ConfigError(
            "Expected the detector's post-processing for the accuracy scenario on the detection "
            f"dataset {dataset.info.name!r} (detection=pipeline_for(spec, backend), "
            "dlbench.execution.scenarios.detection). Received: detection=None"
        )

    outputs, targets = [], []
    start = time.perf_counter()
    for batch in dataset.batches(batch_size, limit=limit):
        outputs.append(model.predict(batch.inputs))
        targets.append(batch.targets)
    wall = time.perf_counter() - start
    n = sum(len(o) for o in outputs)
    metrics = evaluate_outputs(dataset, outputs, targets)
    reasons, notes = [], []
    if dataset.info.synthetic:
        reasons.append("synthetic data: accuracy on random inputs and labels means nothing")
    if n == 0:
        reasons.append("no samples were evaluated")
    if n < len(dataset):
        notes.append(f"evaluated {n} of the split's {len(dataset)} samples")
    return {
        "timing": None,
        "metrics": metrics,
        "evaluated_samples": n,
        "eval_wall_time_s": wall,
        "validity": validity(reasons, notes, min_samples=1, requires_real_data=True),
    }
