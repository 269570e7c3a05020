"""Exporting detectors with several outputs: names kept, parity output by output.

A wrapped PyTorch detector returning ``{"pred_boxes", "logits"}`` exports with both outputs
named as the dict's keys; ONNX Runtime's outputs are compared with torch's one output at a time,
each against its own scale, and the file runs in ONNX Runtime with the detector's own output
contract (same detections as torch). Wrong outputs (negated boxes, swapped outputs, a missing
output) are caught by the parity check. A zoo detector keeps its output name.
"""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import need

import dlbench
from dlbench.detection import DetectorOutputs
from dlbench.detection.wrapped import OutputFields
from dlbench.errors import ConfigError
from dlbench.export import core
from dlbench.export.errors import ExportError, ExportParityError

SIZE = 64
NAMES = ["pred_boxes", "logits"]


def contract() -> DetectorOutputs:
    fields = OutputFields("logits_boxes", boxes="pred_boxes", logits="logits", no_object=True)
    return DetectorOutputs(fields, box_format="cxcywh", normalized=True)


def torch_detector():
    torch = pytest.importorskip("torch")

    class TinyDetr(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(3)
            self.conv = torch.nn.Conv2d(3, 9, 16, 16)

        def forward(self, x):
            o = self.conv(x).flatten(2).transpose(1, 2)
            return {"pred_boxes": o[..., :4].sigmoid() * 50.0, "logits": o[..., 4:]}

    return TinyDetr()


@pytest.fixture(scope="module")
def wrapped():
    need("torch")
    return dlbench.get_backend("torch").wrap(
        torch_detector(), input_shape=(3, SIZE, SIZE), detection=contract()
    )


@pytest.fixture(scope="module")
def exported(wrapped, tmp_path_factory):
    path = tmp_path_factory.mktemp("det-export") / "det.onnx"
    return core.to_onnx(wrapped, path, exporter="torchscript"), path


# -- end to end (torch -> ONNX Runtime) -------------------------------------------------------


def test_names_kept_and_parity_per_output(exported) -> None:
    report, path = exported
    assert report.ok, report.parity
    assert report.output_names == NAMES
    per = report.parity["outputs"]
    assert list(per) == NAMES and all(per[k]["ok"] for k in NAMES)
    # each output against its own scale: boxes (up to 50 px) and logits are not one scale
    assert per["pred_boxes"]["output_scale"] > 10 * per["logits"]["output_scale"]
    assert report.parity["output_scale"] == per["pred_boxes"]["output_scale"]
    import onnx

    assert [o.name for o in onnx.load(str(path)).graph.output] == NAMES


def test_exported_file_gives_torchs_detections(wrapped, exported) -> None:
    _, path = exported
    ort = dlbench.get_backend("onnxruntime").wrap(path, detection=contract())
    x = np.random.default_rng(0).random((3, 3, SIZE, SIZE), dtype=np.float32)
    want = wrapped.detection.run(wrapped.predict(x))
    got = ort.detection.run(ort.predict(x))
    assert sum(len(d) for d in want) == 3 * (SIZE // 16) ** 2
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w.labels, g.labels)
        np.testing.assert_allclose(w.scores, g.scores, atol=1e-5)
        np.testing.assert_allclose(w.boxes, g.boxes, atol=1e-3)


def _corrupt(monkeypatch, change) -> None:
    """ONNX Runtime's outputs of the exported file passed through ``change`` (a wrong file)."""
    real = core._wrap_exported

    def wrong(*args, **kwargs):
        model = real(*args, **kwargs)
        predict = model.predict
        model.predict = lambda batch: change(predict(batch))
        return model

    monkeypatch.setattr(core, "_wrap_exported", wrong)


def test_negated_boxes_are_caught(wrapped, tmp_path, monkeypatch) -> None:
    _corrupt(monkeypatch, lambda out: {**out, "pred_boxes": -out["pred_boxes"]})
    with pytest.raises(ExportParityError, match="output 'pred_boxes'") as err:
        core.to_onnx(wrapped, tmp_path / "neg.onnx", exporter="torchscript")
    parity = err.value.report.parity
    assert parity["failed_output"] == "pred_boxes" and not parity["ok"]
    assert parity["outputs"]["logits"]["ok"] and not parity["outputs"]["pred_boxes"]["ok"]


def test_swapped_outputs_are_caught(wrapped, tmp_path, monkeypatch) -> None:
    # the two outputs exchanged under their names (same shapes here: the values tell)
    def swap(out):
        return {"pred_boxes": out["logits"][..., :4], "logits": out["pred_boxes"][..., :1]}

    _corrupt(monkeypatch, swap)
    with pytest.raises(ExportParityError, match="output 'pred_boxes'"):
        core.to_onnx(wrapped, tmp_path / "swap.onnx", exporter="torchscript")


def test_output_names_must_match_the_outputs(wrapped, tmp_path) -> None:
    with pytest.raises(ConfigError, match="Expected 2 output name"):
        core.to_onnx(wrapped, tmp_path / "x.onnx", output_names=["only_one"])


def test_renamed_outputs_do_not_fit_the_contract(wrapped, tmp_path) -> None:
    # names given in another order: the file's "logits" holds the boxes, and the contract
    # reading it by name fails in ONNX Runtime
    with pytest.raises(ExportParityError, match="does not fit its own output contract"):
        core.to_onnx(wrapped, tmp_path / "r.onnx", exporter="torchscript", output_names=NAMES[::-1])


# -- the parity step without an exporter ------------------------------------------------------


class _Fake:
    def __init__(self, fn, name: str = "fake", detection=None) -> None:
        self.fn, self.name, self.detection = fn, name, detection

    def predict(self, batch):
        return self.fn(batch)


def _two(batch):
    n = len(batch)
    s = batch.reshape(n, -1)[:, :12].astype(np.float64)
    return {"boxes": 100.0 * s.reshape(n, 3, 4), "logits": s.reshape(n, 3, 4) / 100.0}


def test_parity_judges_each_output_on_its_own_scale() -> None:
    src = _Fake(_two)
    # an error of 1e-5 is far under the boxes' bound (1e-4 x ~300) but 10x the logits' one
    off = _Fake(lambda b: {**_two(b), "logits": _two(b)["logits"] + 1e-5})
    p = core._parity(src, off, (3, 4, 4), [8, 1], 1e-4, ["boxes", "logits"])
    assert not p["ok"] and p["failed_output"] == "logits"
    assert p["outputs"]["boxes"]["ok"]
    same = core._parity(src, _Fake(_two), (3, 4, 4), [8, 1], 1e-4, ["boxes", "logits"])
    assert same["ok"] and "failed_output" not in same and same["batch_sizes"] == [8, 1]


def test_parity_catches_a_missing_output() -> None:
    src = _Fake(_two)
    one = _Fake(lambda b: {"boxes": _two(b)["boxes"]})
    p = core._parity(src, one, (3, 4, 4), [2], 1e-4, ["boxes", "logits"])
    assert not p["ok"] and "do not match" in p["error"]


def test_several_outputs_need_a_detector() -> None:
    with pytest.raises(ExportError, match="or a wrapped detector"):
        core._output_names(None, _Fake(_two), (3, 4, 4), None, 1)
    names = core._output_names(None, _Fake(_two, detection=object()), (3, 4, 4), None, 1)
    assert names == ["boxes", "logits"]
    listed = _Fake(lambda b: [_two(b)["boxes"], _two(b)["logits"]], detection=object())
    assert core._output_names(None, listed, (3, 4, 4), None, 1) == ["output_0", "output_1"]


@pytest.mark.slow  # a MobileNetV2 + FPN export: 18 s under load
def test_zoo_detector_keeps_its_output_name(tmp_path) -> None:
    need("torch", "torchscript")
    spec = dlbench.zoo.get("fcos_mobilenet_v2", num_classes=4, input_shape=(3, SIZE, SIZE))
    report = core.to_onnx(spec, tmp_path / "fcos.onnx", source="torch", exporter="torchscript")
    assert report.ok, report.parity
    assert report.output_names == list(spec.outputs) == ["detections"]
    assert "outputs" not in report.parity  # one output: one record, as before


# -- JAX and Keras: their exporters flatten a dict in sorted key order -------------------------


def _same_detections(model, path) -> None:
    ort = dlbench.get_backend("onnxruntime").wrap(path, detection=contract())
    x = np.random.default_rng(1).random((2, 3, SIZE, SIZE), dtype=np.float32)
    for w, g in zip(model.detection.run(model.predict(x)), ort.detection.run(ort.predict(x))):
        np.testing.assert_array_equal(w.labels, g.labels)
        np.testing.assert_allclose(w.boxes, g.boxes, atol=1e-3)


@pytest.mark.slow  # imports JAX and jax2onnx
def test_jax_detector_dict_outputs(tmp_path) -> None:
    need("jax")
    import jax
    import jax.numpy as jnp

    w = np.random.default_rng(0).normal(0, 0.02, (9, 3, 16, 16)).astype(np.float32)

    def fn(params, x):
        dn = ("NCHW", "OIHW", "NCHW")
        y = jax.lax.conv_general_dilated(x, params["w"], (16, 16), "VALID", dimension_numbers=dn)
        o = y.reshape(y.shape[0], 9, -1).transpose(0, 2, 1)
        return {"pred_boxes": jax.nn.sigmoid(o[..., :4]), "logits": o[..., 4:]}

    model = dlbench.get_backend("jax").wrap(
        fn, {"w": jnp.asarray(w)}, input_shape=(3, SIZE, SIZE), detection=contract()
    )
    report = core.to_onnx(model, tmp_path / "jax.onnx")
    assert report.ok and report.output_names == sorted(NAMES)
    assert set(report.parity["outputs"]) == set(NAMES)
    _same_detections(model, tmp_path / "jax.onnx")


@pytest.mark.slow  # imports TensorFlow and tf2onnx
def test_keras_detector_dict_outputs(tmp_path) -> None:
    need("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    rows = keras.layers.Reshape((16, 9))(keras.layers.Conv2D(9, 16, strides=16)(inp))
    boxes = keras.layers.Activation("sigmoid")(rows[..., :4])
    net = keras.Model(inp, {"pred_boxes": boxes, "logits": rows[..., 4:]})
    model = dlbench.get_backend("tensorflow").wrap(net, detection=contract())
    report = core.to_onnx(model, tmp_path / "keras.onnx")
    assert report.ok and report.output_names == sorted(NAMES)
    _same_detections(model, tmp_path / "keras.onnx")
