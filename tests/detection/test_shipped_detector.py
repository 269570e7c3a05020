"""The shipped fcos_mobilenet_v2 weights (trained on shapes train): loaded by default where they
fit, and every backend's COCO AP on shapes val equal to the float64 NumPy reference's within
0.001 (a few images at a small input size in the default suite; the full val split, and another
generation seed, marked slow)."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench import datasets, zoo
from dlbench.errors import ConfigError
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.detection import pipeline_for
from dlbench.model.backend import get_backend
from dlbench.model.zoo.detection import WEIGHTS

BACKENDS = ["torch", "onnxruntime", "tensorflow", "jax"]

pytestmark = pytest.mark.skipif(
    not WEIGHTS.with_suffix(".npz").is_file(), reason="no shipped detector weights"
)


def test_shipped_weights_load_where_they_fit() -> None:
    spec = zoo.get("fcos_mobilenet_v2")
    assert spec.metadata["pretrained"] is True and spec.num_classes == 4
    assert spec.metadata["trained"]["dataset"] == "shapes"
    seeded = zoo.get("fcos_mobilenet_v2", pretrained=False)
    assert seeded.metadata["pretrained"] is False
    assert any(not np.array_equal(spec.params[k], seeded.params[k]) for k in spec.params)
    # fully convolutional: the same weights at another input size
    small = zoo.get("fcos_mobilenet_v2", input_shape=(3, 128, 128))
    assert small.metadata["pretrained"] is True
    assert all(np.array_equal(small.params[k], spec.params[k]) for k in spec.params)
    assert zoo.get("fcos_mobilenet_v2", num_classes=80).metadata["pretrained"] is False
    with pytest.raises(ConfigError, match="shipped weights expect num_classes=4"):
        zoo.get("fcos_mobilenet_v2", num_classes=3, pretrained=True)


def _ap(spec, ds, backend: str, limit: int | None) -> dict:
    model = get_backend(backend, intra_op_threads=1).build(spec)
    rec = run_scenario(
        "accuracy", model, ds, batch_size=1, limit=limit, detection=pipeline_for(spec, backend)
    )
    return rec["metrics"]


def _agreement(seed: int, image_size: int, limit: int | None, backend: str) -> None:
    pytest.importorskip(backend)
    ds = datasets.load("shapes", split="val", seed=seed, image_size=image_size)
    spec = zoo.get("fcos_mobilenet_v2", input_shape=(3, image_size, image_size))
    key = (seed, image_size, limit)
    if key not in _REFERENCE:
        _REFERENCE[key] = _ap(spec, ds, "numpy", limit)
    ref = _REFERENCE[key]
    got = _ap(spec, ds, backend, limit)
    assert ref["detections"] > 0
    for k in ("AP", "AP50", "AP75", "AR100"):
        assert abs(got[k] - ref[k]) <= 1e-3, (k, got[k], ref[k])


_REFERENCE: dict = {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_ap_equals_the_reference_on_a_few_images(backend: str) -> None:
    _agreement(seed=0, image_size=128, limit=4, backend=backend)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_ap_equals_the_reference_on_shapes_val(backend: str, seed: int) -> None:
    """The full val split at the default input size; seed 1 is another generated dataset."""
    _agreement(seed=seed, image_size=320, limit=None, backend=backend)


@pytest.mark.slow
def test_shipped_weights_detect_shapes() -> None:
    """The shipped weights' AP on shapes val (the reference pipeline) is the one the training
    script measured (in torch) within 0.001, and above what untrained weights score."""
    ds = datasets.load("shapes", split="val")
    spec = zoo.get("fcos_mobilenet_v2")
    ap = _ap(spec, ds, "numpy", None)["AP"]
    assert ap == pytest.approx(spec.metadata["trained"]["val_AP"], abs=1e-3)
    untrained = _ap(zoo.get("fcos_mobilenet_v2", pretrained=False), ds, "numpy", None)["AP"]
    assert ap > untrained + 0.01
