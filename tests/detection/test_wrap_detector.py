"""Bring your own detector: ``wrap(..., detection=...)`` in PyTorch, Keras and JAX (and an ONNX
file), through the accuracy scenario.

The detector is a tiny DETR-style set predictor (one 16x16 stride-16 convolution: per patch,
``pred_boxes`` = sigmoid cxcywh normalised, ``logits`` over 4 classes + "no object") written
natively in each framework with the same weights. Every wrapped version must give COCO stats
equal to pycocotools run on the detections the scenario recorded, and those detections must equal
a NumPy computation written here (the convolution, the softmax, the box conversion and the
letterbox inverse by hand, none of dlbench's code). Bad detectors and bad inputs get clear errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from dlbench import datasets, zoo
from dlbench.detection import Decoder, DetectorOutputs, nms
from dlbench.errors import BackendError, ConfigError, DataError
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.detection import STAGES, pipeline_for
from dlbench.model.backend import get_backend

SIZE = 64
PATCH = 16
CLASSES = 4
STAT_ORDER = ("AP", "AP50", "AP75", "APs", "APm", "APl")
STAT_ORDER += ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes-wrap")
    return datasets.load(
        "shapes", root=str(root), split="val", num_images=4, num_train_images=2, image_size=SIZE
    )


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(12)
    w = rng.normal(0, 0.02, (4 + CLASSES + 1, 3, PATCH, PATCH)).astype(np.float32)
    b = rng.normal(0, 0.5, (4 + CLASSES + 1,)).astype(np.float32)
    return w, b


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def detr_style(out):
    """The user's function: DETR's "no object" column dropped, best class per query."""
    p = softmax(np.asarray(out["logits"], np.float64))[..., :-1]
    return [
        {"boxes": b, "scores": q.max(-1), "labels": q.argmax(-1)}
        for b, q in zip(out["pred_boxes"], p)
    ]


def outputs(**kw) -> DetectorOutputs:
    return DetectorOutputs(
        detr_style, box_format="cxcywh", normalized=True, label_map=[1, 2, 3, 4], stride=16, **kw
    )


def numpy_forward(w: np.ndarray, b: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """The detector by hand: stride-16 patches dotted with the kernel."""
    n, c, h, wd = x.shape
    p = x.reshape(n, c, h // PATCH, PATCH, wd // PATCH, PATCH).transpose(0, 2, 4, 1, 3, 5)
    o = np.einsum("nyxcij,ocij->nyxo", p.astype(np.float64), w.astype(np.float64)) + b
    o = o.reshape(n, -1, o.shape[-1])
    return {"logits": o[..., 4:], "pred_boxes": 1.0 / (1.0 + np.exp(-o[..., :4]))}


def hand_results(
    ds, w, b, box_format: str = "cxcywh", *, space: str = "original", sort: bool = True
) -> list[tuple]:
    """COCO results ``(image_id, category_id, x, y, w, h, score)`` computed here, sorted (in
    original image pixels, or ``space="input"``: the letterboxed input's)."""
    rows = []
    for i in range(len(ds)):
        batch = ds.get_batch([i])
        t = batch.targets[0]
        out = numpy_forward(w, b, batch.inputs)
        prob = softmax(out["logits"][0])[:, :-1]
        for box, q in zip(out["pred_boxes"][0], prob):
            if box_format == "cxcywh":
                cx, cy, bw, bh = box * SIZE
                x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
            else:  # xywh
                x1, y1, bw, bh = box * SIZE
                x2, y2 = x1 + bw, y1 + bh
            x1, x2 = (min(max(v, 0.0), SIZE) for v in (x1, x2))
            y1, y2 = (min(max(v, 0.0), SIZE) for v in (y1, y2))
            ox1 = min(max((x1 - t["pad_x"]) / t["scale"], 0), t["orig_width"])
            oy1 = min(max((y1 - t["pad_y"]) / t["scale"], 0), t["orig_height"])
            ox2 = min(max((x2 - t["pad_x"]) / t["scale"], 0), t["orig_width"])
            oy2 = min(max((y2 - t["pad_y"]) / t["scale"], 0), t["orig_height"])
            if space == "input":
                ox1, oy1, ox2, oy2 = x1, y1, x2, y2
            cat = int(q.argmax()) + 1
            rows.append((int(t["image_id"]), cat, ox1, oy1, ox2 - ox1, oy2 - oy1, float(q.max())))
    return sorted(rows) if sort else rows


def recorded(rec) -> list[tuple]:
    r = rec["coco_results"]
    return sorted(
        (int(i), int(c), *map(float, bb), float(s))
        for i, c, bb, s in zip(r["image_id"], r["category_id"], r["bbox"], r["score"])
    )


def pycocotools_stats(gt: dict, rec) -> np.ndarray:
    """pycocotools' 12 stats on the detections the scenario recorded."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    coco.createIndex()
    r = rec["coco_results"]
    dets = [
        {"image_id": int(i), "category_id": int(c), "bbox": list(map(float, bb)), "score": s}
        for i, c, bb, s in zip(r["image_id"], r["category_id"], r["bbox"], r["score"])
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def accuracy(model, ds, **kw):
    pipe = dataclasses.replace(model.detection, keep_results=True)
    return run_scenario("accuracy", model, ds, batch_size=1, detection=pipe, **kw)


def check_against_references(rec, ds, w, b) -> None:
    got = recorded(rec)
    want = hand_results(ds, w, b)
    assert len(got) == len(want) == len(ds) * (SIZE // PATCH) ** 2
    np.testing.assert_array_equal([g[:2] for g in got], [h[:2] for h in want])
    np.testing.assert_allclose([g[2:] for g in got], [h[2:] for h in want], atol=1e-3)
    stats = np.array([rec["metrics"][k] for k in STAT_ORDER])
    assert stats.max() > 0  # some stat above zero: the comparison is informative
    np.testing.assert_allclose(stats, pycocotools_stats(ds.coco_ground_truth(), rec), atol=1e-9)
    assert rec["evaluated_samples"] == len(ds) and rec["validity"]["valid"]
    for s in STAGES:
        assert len(rec["stages"][s]["samples_s"]) == len(ds)


# -- the three frameworks ---------------------------------------------------------------------


def torch_detector(w, b):
    torch = pytest.importorskip("torch")

    class TinyDetr(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, w.shape[0], PATCH, PATCH)
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(w))
                self.conv.bias.copy_(torch.from_numpy(b))

        def forward(self, x):
            o = self.conv(x).flatten(2).transpose(1, 2)
            return {"logits": o[..., 4:], "pred_boxes": o[..., :4].sigmoid()}

    return TinyDetr()


def test_torch_detector_accuracy_equals_pycocotools_and_a_hand_computation(shapes, weights) -> None:
    w, b = weights
    model = get_backend("torch").wrap(
        torch_detector(w, b), input_shape=(3, SIZE, SIZE), detection=outputs()
    )
    rec = accuracy(model, shapes)
    check_against_references(rec, shapes, w, b)
    desc = rec["pipeline"]["postprocess"]["decoder"]
    assert desc["kind"] == "outputs_fn" and desc["label_map"] == {"0": 1, "1": 2, "2": 3, "3": 4}
    assert model.settings()["task"] == "detection"
    # the backend option postprocess=native does not apply to an outputs function: said
    assert rec["pipeline"]["postprocess"]["asked"] == "native"
    assert any("applies to Decoder heads" in n for n in rec["validity"]["notes"])
    # the timing scenarios take a wrapped detector as they take any model
    lat = run_scenario(
        "latency", model, shapes, batch_size=1, stop_rule={"min_iters": 3, "min_time": 0.0}
    )
    assert lat["timing"]["n"] >= 3


def test_keras_detector_same_detections(shapes, weights) -> None:
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    w, b = weights
    inp = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(w.shape[0], PATCH, strides=PATCH)
    o = keras.layers.Reshape(((SIZE // PATCH) ** 2, w.shape[0]))(conv(inp))
    net = keras.Model(inp, {"logits": o[..., 4:], "pred_boxes": keras.ops.sigmoid(o[..., :4])})
    conv.set_weights([w.transpose(2, 3, 1, 0), b])
    model = get_backend("tensorflow").wrap(net, detection=outputs())  # NHWC, size from the model
    assert model.layout == "NHWC" and model.input_shape == (3, SIZE, SIZE)
    check_against_references(accuracy(model, shapes), shapes, w, b)


def test_jax_detector_same_detections(shapes, weights) -> None:
    jax = pytest.importorskip("jax")
    w, b = weights

    def fn(p, x):
        o = jax.lax.conv_general_dilated(
            x, p["w"], (PATCH, PATCH), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        o = (o + p["b"][None, :, None, None]).reshape(x.shape[0], w.shape[0], -1)
        o = o.transpose(0, 2, 1)
        return o[..., 4:], jax.nn.sigmoid(o[..., :4])  # a tuple this time

    def from_tuple(out):
        return detr_style({"logits": out[0], "pred_boxes": out[1]})

    spec = DetectorOutputs(
        from_tuple, box_format="cxcywh", normalized=True, label_map={0: 1, 1: 2, 2: 3, 3: 4}
    )
    model = get_backend("jax").wrap(
        fn, {"w": w, "b": b}, input_shape=(3, SIZE, SIZE), detection=spec
    )
    check_against_references(accuracy(model, shapes), shapes, w, b)


@pytest.mark.parametrize("batch", ["batch", 1])
def test_onnx_detector_two_outputs(shapes, weights, tmp_path: Path, batch) -> None:
    """A graph with two outputs (the function gets them by name); a graph exported for batch 1
    is probed at batch 1."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights
    k = w.shape[0]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[PATCH, PATCH],
                         strides=[PATCH, PATCH]),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["o"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["o", "s4", "e9", "ax2"], ["logits"]),
        helper.make_node("Slice", ["o", "s0", "e4", "ax2"], ["raw_boxes"]),
        helper.make_node("Sigmoid", ["raw_boxes"], ["pred_boxes"]),
    ]  # fmt: skip
    consts = {
        "w": w,
        "b": b,
        "shape": np.array([0, k, -1], np.int64),
        "s4": np.array([4], np.int64),
        "e9": np.array([k], np.int64),
        "s0": np.array([0], np.int64),
        "e4": np.array([4], np.int64),
        "ax2": np.array([2], np.int64),
    }
    graph = helper.make_graph(
        nodes,
        "tiny_detr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 16, k - 4]),
            helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, [batch, 16, 4]),
        ],
        [numpy_helper.from_array(v, n) for n, v in consts.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "tiny_detr.onnx"
    onnx.save(proto, path)
    model = get_backend("onnxruntime").wrap(str(path), detection=outputs())
    check_against_references(accuracy(model, shapes), shapes, w, b)


def greedy_nms_by_hand(rows: list[tuple], iou_threshold: float) -> list[tuple]:
    """Per image and category, best score first, drop a box overlapping a kept one by more."""

    def iou(a, b) -> float:
        ax2, ay2, bx2, by2 = a[2] + a[4], a[3] + a[5], b[2] + b[4], b[3] + b[5]
        iw = max(0.0, min(ax2, bx2) - max(a[2], b[2]))
        ih = max(0.0, min(ay2, by2) - max(a[3], b[3]))
        union = a[4] * a[5] + b[4] * b[5] - iw * ih
        return iw * ih / union if union > 0 and a[4] * a[5] > 0 and b[4] * b[5] > 0 else 0.0

    kept: list[tuple] = []
    for r in sorted(rows, key=lambda r: -r[6]):
        if not any(k[:2] == r[:2] and iou(k, r) > iou_threshold for k in kept):
            kept.append(r)
    return sorted(kept)


def test_nms_config_keeps_what_a_greedy_nms_by_hand_keeps(shapes, weights) -> None:
    """A raw head with a decode + NMS config (score threshold, class-aware NMS): the recorded
    detections are those of a greedy NMS written here on the hand computation's boxes in input
    pixels (where dlbench runs it: a box reaching into the letterbox padding has another IoU
    once clipped to the original image)."""
    w, b = weights
    spec = outputs(score_threshold=0.33, iou_threshold=0.8)
    model = get_backend("torch").wrap(
        torch_detector(w, b), input_shape=(3, SIZE, SIZE), detection=spec
    )
    got = recorded(accuracy(model, shapes))
    original = hand_results(shapes, w, b, sort=False)
    inputs = hand_results(shapes, w, b, space="input", sort=False)
    pairs = [(i, o) for i, o in zip(inputs, original) if i[6] > 0.33]
    kept = set(greedy_nms_by_hand([i for i, _ in pairs], 0.8))
    want = sorted(o for i, o in pairs if i in kept)
    assert 0 < len(want) < len(pairs) < len(original)  # the threshold and NMS removed some
    assert [g[:2] for g in got] == [h[:2] for h in want]
    np.testing.assert_allclose([g[2:] for g in got], [h[2:] for h in want], atol=1e-3)


# -- the checks can fail ----------------------------------------------------------------------


def test_a_wrong_box_format_is_caught_by_the_hand_computation(shapes, weights) -> None:
    """Declaring cxcywh boxes as xywh gives other detections than the hand computation: the
    comparisons above can fail. Declared as xyxy, some boxes come out inverted: a clear error."""
    w, b = weights
    wrong = DetectorOutputs(detr_style, box_format="xywh", normalized=True, label_map=[1, 2, 3, 4])
    model = get_backend("torch").wrap(
        torch_detector(w, b), input_shape=(3, SIZE, SIZE), detection=wrong
    )
    rec = accuracy(model, shapes)
    got, want = recorded(rec), hand_results(shapes, w, b)
    assert not np.allclose([g[2:] for g in got], [h[2:] for h in want], atol=1e-3)
    right = hand_results(shapes, w, b, box_format="xywh")
    np.testing.assert_allclose([g[2:] for g in got], [h[2:] for h in right], atol=1e-3)
    inverted = dataclasses.replace(wrong, box_format="xyxy")
    with pytest.raises(DataError, match=r"x1 <= x2 and y1 <= y2 once read as xyxy.*box_format"):
        model = get_backend("torch").wrap(
            torch_detector(w, b), input_shape=(3, SIZE, SIZE), detection=inverted
        )
        accuracy(model, shapes)


def test_a_shifted_label_map_changes_the_categories(shapes, weights) -> None:
    w, b = weights
    model = get_backend("torch").wrap(
        torch_detector(w, b),
        input_shape=(3, SIZE, SIZE),
        detection=dataclasses.replace(outputs(), label_map=[2, 3, 4, 1]),
    )
    got, want = recorded(accuracy(model, shapes)), hand_results(shapes, w, b)
    assert [g[1] for g in got] != [h[1] for h in want]


# -- the zoo's detector wrapped: a raw head and a Decoder -------------------------------------


def test_a_zoo_detector_wrapped_with_its_decoder_scores_as_the_zoo(shapes) -> None:
    """The zoo's FCOS built natively in torch, wrapped as a plain nn.Module with its Decoder:
    the same COCO stats as the zoo pipeline (same native post-processing)."""
    spec = zoo.get(
        "fcos_mobilenet_v2", num_classes=4, input_shape=(3, SIZE, SIZE), seed=3, pretrained=False
    )
    built = get_backend("torch").build(spec)
    zoo_pipe = pipeline_for(spec, "torch", score_threshold=0.0)
    want = run_scenario("accuracy", built, shapes, batch_size=1, limit=2, detection=zoo_pipe)
    model = get_backend("torch").wrap(
        built.module, input_shape=(3, SIZE, SIZE), detection=zoo_pipe.decoder
    )
    assert model.detection.mode == "native"
    got = run_scenario("accuracy", model, shapes, batch_size=1, limit=2)  # the model's own
    for k in STAT_ORDER:
        assert got["metrics"][k] == pytest.approx(want["metrics"][k], abs=1e-12)
    assert got["metrics"]["detections"] == want["metrics"]["detections"] > 0
    wrong = Decoder("points", input_size=SIZE, num_classes=3)
    with pytest.raises(DataError, match=r"Expected raw detector output of shape \(N, 84, 8\)"):
        get_backend("torch").wrap(built.module, input_shape=(3, SIZE, SIZE), detection=wrong)


@pytest.mark.slow
def test_a_zoo_detector_wrapped_in_jax_scores_as_the_zoo(shapes) -> None:
    """The same in JAX: the zoo's FCOS as a plain ``fn(params, x)`` with its Decoder runs JAX's
    native (fixed-size) NMS and scores as the zoo's own JAX model."""
    pytest.importorskip("jax")
    spec = zoo.get(
        "fcos_mobilenet_v2", num_classes=4, input_shape=(3, SIZE, SIZE), seed=3, pretrained=False
    )
    built = get_backend("jax").build(spec)
    zoo_pipe = pipeline_for(spec, "jax", score_threshold=0.0)
    want = run_scenario("accuracy", built, shapes, batch_size=1, limit=2, detection=zoo_pipe)
    model = get_backend("jax").wrap(
        built.apply, built.params, input_shape=(3, SIZE, SIZE), detection=zoo_pipe.decoder
    )
    assert model.detection.mode == "native" and "jax" in model.detection.module
    got = run_scenario("accuracy", model, shapes, batch_size=1, limit=2)
    for k in STAT_ORDER:
        assert got["metrics"][k] == pytest.approx(want["metrics"][k], abs=1e-12)
    assert got["metrics"]["detections"] == want["metrics"]["detections"] > 0


# -- bad detectors, bad inputs ----------------------------------------------------------------


def _torch_wrap(fn_out, spec, input_shape=(3, SIZE, SIZE)):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def forward(self, x):
            return fn_out(torch, x)

    return get_backend("torch").wrap(Net(), input_shape=input_shape, detection=spec)


def _dict_out(torch, x):
    n = x.shape[0]
    return {"logits": torch.zeros(n, 3, CLASSES + 1), "pred_boxes": torch.full((n, 3, 4), 0.5)}


def test_outputs_not_matching_the_declared_decode_are_clear_errors() -> None:
    # one tensor where the function expects a dict
    with pytest.raises(DataError, match="outputs function 'detr_style'.*failed on ndarray"):
        _torch_wrap(lambda t, x: x.flatten(1), outputs())
    # one item for a batch of two
    one = DetectorOutputs(lambda out: detr_style(out)[:1], box_format="cxcywh", normalized=True)
    with pytest.raises(DataError, match=r"one detection list per image .* Received: 1"):
        _torch_wrap(_dict_out, one)
    # boxes that are not (K, 4)
    three = DetectorOutputs(lambda out: [(o[:, :3], o[:, 0], o[:, 0].astype(int)) for o in out])
    with pytest.raises(DataError, match=r"Expected boxes of shape \(K, 4\).*\(3, 3\)"):
        _torch_wrap(lambda t, x: t.zeros(x.shape[0], 3, 5), three)
    # scores with NaN
    nan = DetectorOutputs(lambda out: [(o[:, :4], o[:, 4] * np.nan, o[:, 4]) for o in out])
    with pytest.raises(DataError, match="Expected scores without NaN"):
        _torch_wrap(lambda t, x: t.zeros(x.shape[0], 3, 5), nan)
    # a Decoder for a detector that returns a dict
    dec = Decoder("points", input_size=SIZE, num_classes=CLASSES)
    with pytest.raises(DataError, match="one raw head tensor of shape"):
        _torch_wrap(_dict_out, dec)
    # not a tensor at all
    with pytest.raises(BackendError, match="return tensors, or a dict"):
        _torch_wrap(lambda t, x: "boxes", outputs())


def test_items_and_labels_are_checked() -> None:
    spec = DetectorOutputs(lambda out: out).bind((SIZE, SIZE))
    with pytest.raises(DataError, match="a list with one"):
        DetectorOutputs(lambda out: {"boxes": 1}).bind((SIZE, SIZE)).postprocess(None)
    with pytest.raises(DataError, match="Expected keys 'boxes', 'scores', 'labels'"):
        spec.postprocess([{"boxes": np.zeros((0, 4))}])
    with pytest.raises(DataError, match=r"Expected scores of shape \(2,\)"):
        spec.postprocess([(np.zeros((2, 4)), np.zeros(3), np.zeros(2, int))])
    with pytest.raises(DataError, match="integer class labels"):
        spec.postprocess([(np.zeros((1, 4)), np.ones(1), np.array([0.5]))])
    with pytest.raises(DataError, match="non-negative class labels"):
        spec.postprocess([(np.zeros((1, 4)), np.ones(1), np.array([-1]))])
    with pytest.raises(DataError, match="finite box"):
        spec.postprocess([(np.full((1, 4), np.inf), np.ones(1), np.array([0]))])
    assert len(spec.postprocess([(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))])[0]) == 0


def test_input_size_and_contract_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of its largest stride 16.*70"):
        _torch_wrap(_dict_out, outputs(), input_shape=(3, 70, 70))
    with pytest.raises(ConfigError, match=r"Expected `input_shape=\(3, H, W\)`"):
        _torch_wrap(_dict_out, outputs(), input_shape=None)
    with pytest.raises(ConfigError, match="Expected `detection` to be"):
        _torch_wrap(_dict_out, {"box_format": "xyxy"})
    with pytest.raises(ConfigError, match="Expected `box_format`"):
        DetectorOutputs(detr_style, box_format="yxyx")
    with pytest.raises(ConfigError, match="Expected `label_map`"):
        DetectorOutputs(detr_style, label_map={"cat": 1})
    with pytest.raises(ConfigError, match="Expected `iou_threshold`"):
        DetectorOutputs(detr_style, iou_threshold=1.5)
    with pytest.raises(ConfigError, match="Expected `score_threshold` to be a finite number"):
        DetectorOutputs(detr_style, score_threshold=float("nan"))
    with pytest.raises(ConfigError, match="Expected `max_detections` to be a positive int"):
        DetectorOutputs(detr_style, max_detections=0)
    dec = Decoder("points", input_size=128, num_classes=CLASSES)
    with pytest.raises(ConfigError, match=r"Decoder's input size \(128, 128\)"):
        _torch_wrap(_dict_out, dec)


def test_dataset_mismatches_are_clear_errors(shapes, tmp_path: Path) -> None:
    model = _torch_wrap(_dict_out, dataclasses.replace(outputs(), label_map=[1, 2, 3, 99]))
    with pytest.raises(ConfigError, match=r"label_map. values among the category ids.*\[99\]"):
        run_scenario("accuracy", model, shapes, batch_size=1)
    model = _torch_wrap(_dict_out, outputs(), input_shape=(3, 32, 32))
    with pytest.raises(DataError, match="load it with image_size=32"):
        run_scenario("accuracy", model, shapes, batch_size=1)


def test_an_image_that_does_not_decode_is_a_clear_error(tmp_path: Path) -> None:
    ds = datasets.load(
        "shapes", root=str(tmp_path), split="val", num_images=2, num_train_images=1,
        image_size=SIZE,
    )  # fmt: skip
    ds.image_path(1).write_bytes(b"not a jpeg at all")
    model = _torch_wrap(_dict_out, outputs())
    with pytest.raises(DataError, match="Could not decode image"):
        run_scenario("accuracy", model, ds, batch_size=1)


# -- the post-processing contract, no framework -----------------------------------------------


def test_formats_label_map_thresholds_nms_and_cap() -> None:
    boxes = np.array([[10, 10, 20, 20], [11, 11, 20, 20], [40, 40, 10, 10]], float)  # xywh
    scores = np.array([0.9, 0.8, 0.7])
    labels = np.array([0, 0, 5])  # 5: not in the label map ("no object")

    def fn(out):
        return [(boxes, scores, labels)]

    spec = DetectorOutputs(fn, box_format="xywh", label_map={0: 7}).bind((SIZE, SIZE))
    d = spec.postprocess(None)[0]
    assert d.indices.tolist() == [0, 1] and d.labels.tolist() == [0, 0]
    np.testing.assert_allclose(d.boxes[0], [10, 10, 30, 30])
    assert spec.dropped == 1 and spec.to_dict()["dropped_unmapped"] == 1
    # NMS at 0.5 keeps the best of the two overlapping boxes, as the reference nms does
    with_nms = dataclasses.replace(spec, iou_threshold=0.5).postprocess(None)[0]
    ref = nms(np.array([[10, 10, 30, 30], [11, 11, 31, 31]], float), scores[:2], labels[:2], 0.5)
    assert with_nms.indices.tolist() == ref.indices.tolist() == [0]
    # NMS looks at the pre_nms_top_k best only
    top1 = dataclasses.replace(spec, iou_threshold=0.99, pre_nms_top_k=1).postprocess(None)[0]
    assert top1.indices.tolist() == [0]
    top2 = dataclasses.replace(spec, iou_threshold=0.99, pre_nms_top_k=2).postprocess(None)[0]
    assert top2.indices.tolist() == [0, 1]
    # threshold and cap
    assert dataclasses.replace(spec, score_threshold=0.85).postprocess(None)[
        0
    ].indices.tolist() == [0]
    assert dataclasses.replace(spec, max_detections=1).postprocess(None)[0].indices.tolist() == [0]
    # boxes clipped to the input; normalised cxcywh scaled by (width, height)
    wide = DetectorOutputs(
        lambda out: [(np.array([[0.5, 0.5, 1.5, 0.5]]), np.ones(1), np.zeros(1, int))],
        box_format="cxcywh",
        normalized=True,
    ).bind((32, 64))
    np.testing.assert_allclose(wide.postprocess(None)[0].boxes, [[0, 8, 64, 24]])
