"""Zoo detectors: built from the op set, sizes, declared decoder, parity of the raw outputs on
every installed backend against the float64 NumPy reference, and native post-processing of them."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dlbench import zoo
from dlbench.analysis.parity import compare, failed, make_batch
from dlbench.detection import Decoder
from dlbench.errors import ConfigError
from dlbench.model.backend import get_backend
from dlbench.model.zoo.detection import decoder_for
from dlbench.testing.conformance import reference

DETECTORS = ["fcos_mobilenet_v2", "retinanet_mobilenet_v2"]
BACKENDS = ["numpy", "torch", "tensorflow", "jax", "onnxruntime"]
SMALL = (3, 64, 64)


def _need(backend: str) -> None:
    module = {"numpy": None, "tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(
        backend, backend
    )
    if module:
        pytest.importorskip(module)


@pytest.mark.parametrize("name", DETECTORS)
def test_registered_with_task_detection(name: str) -> None:
    assert name in zoo.names()
    spec = zoo.get(name, num_classes=4)
    assert spec.metadata["task"] == "detection" and spec.num_classes == 4
    assert spec.input_shape == (3, 320, 320)
    ops = {n.op for n in spec.nodes}
    assert {"conv2d", "batch_norm", "relu6", "upsample", "add", "concat", "reshape"} <= ops
    assert {"transpose"} <= ops
    assert len(spec.outputs) == 1


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("size", [64, 320, 640, (320, 640)])
def test_input_sizes(name: str, size) -> None:
    h, w = (size, size) if isinstance(size, int) else size
    spec = zoo.get(name, num_classes=3, input_shape=(3, h, w))
    d = decoder_for(spec)
    assert d.hw == (h, w)
    assert spec.output_shape == (d.num_rows, d.row_width)
    per = 1 if d.kind == "points" else 9
    assert d.num_rows == per * sum((h // s) * (w // s) for s in (8, 16, 32))


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("shape", [(3, 300, 300), (3, 320, 100), (1, 320, 320), (3, 16, 16)])
def test_bad_input_size_is_a_clear_error(name: str, shape) -> None:
    with pytest.raises(ConfigError, match=r"multiple of its largest stride 32|\(3, H, W\)"):
        zoo.get(name, input_shape=shape)


def test_decoder_must_match_the_output() -> None:
    spec = zoo.get("fcos_mobilenet_v2", num_classes=3, input_shape=SMALL)
    spec.metadata = {**spec.metadata, "num_classes": 5}
    with pytest.raises(ConfigError, match="declared points decoder"):
        decoder_for(spec)
    with pytest.raises(ConfigError, match="Expected a detection model"):
        decoder_for(zoo.get("mlp"))


def test_output_layout_is_what_the_decoder_reads() -> None:
    """The class-logit columns of the FCOS output are the head's cls conv at each location: with
    every cls weight zero, they equal the cls bias (the RetinaNet prior), nothing else does."""
    spec = zoo.get("fcos_mobilenet_v2", num_classes=3, input_shape=SMALL)
    for lvl in (3, 4, 5):
        spec.params[f"head{lvl}.cls.weight"][:] = 0
        spec.params[f"head{lvl}.cls.bias"][:] = np.array([-1.0, 0.0, 2.0], np.float32)
    y = get_backend("numpy").build(spec).predict(make_batch(SMALL, 2, seed=0))
    d = decoder_for(spec)
    np.testing.assert_allclose(
        y[..., d.box_columns :], np.broadcast_to([-1, 0, 2], y[..., 5:].shape)
    )
    assert (y[..., :4] >= 0).all()  # ReLU'd distances
    # level boundaries: rows of stride 8 first (8x8 locations of a 64x64 input)
    assert d.prior_strides[:64].tolist() == [8.0] * 64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DETECTORS)
def test_raw_output_parity_and_native_postprocess(backend: str, name: str) -> None:
    """Every installed backend builds the detector and matches the reference's raw outputs; its
    raw outputs through its native post-processing keep the reference pipeline's detections."""
    _need(backend)
    spec = zoo.get(name, num_classes=3, input_shape=SMALL)
    batch = make_batch(SMALL, 2, seed=0)
    ref = reference(f"detector:{name}:64", spec, batch)
    out = get_backend(backend).build(spec).predict(batch)
    assert out.shape == ref.shape == (2, *spec.output_shape)
    assert out.dtype == (np.float64 if backend == "numpy" else np.float32)
    result = compare(ref, out, tolerance=1e-4)
    assert not failed(result), result

    # random weights put every score near the prior: a low threshold keeps candidates
    d: Decoder = decoder_for(spec, score_threshold=0.0, iou_threshold=0.5, max_detections=50)
    want = d.postprocess(ref)
    got = importlib.import_module(f"dlbench.backends.{backend}.postprocess").postprocess(d, out)
    for w, g in zip(want, got):
        assert len(w) == 50 and len(g) == len(w)
        np.testing.assert_allclose(np.sort(g.scores)[::-1], w.scores, rtol=1e-4, atol=1e-5)
        if g.indices is not None:
            # (nearly) the same candidates kept; boxes within float tolerance of the input scale
            same = g.indices == w.indices
            assert same.mean() >= 0.9
            np.testing.assert_allclose(g.boxes[same], w.boxes[same], atol=64 * 1e-4)


def test_parity_catches_a_wrong_layout() -> None:
    """Feeding rows in another order (a wrong transpose) is caught by the same comparison."""
    spec = zoo.get("fcos_mobilenet_v2", num_classes=3, input_shape=SMALL)
    batch = make_batch(SMALL, 2, seed=0)
    ref = reference("detector:fcos_mobilenet_v2:64", spec, batch)
    wrong = ref[:, ::-1].astype(np.float32)
    assert failed(compare(ref, wrong, tolerance=1e-4))
