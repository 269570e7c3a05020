"""A wrapped (bring-your-own) detector through ``dlbench.run`` and ``dlbench run``.

- a live PyTorch detector: ``dlbench.run(model=<wrapped>, dataset="shapes", ...)`` gives the
  cells, the 12 COCO stats, the stage split and the detection summary, with the contract, the
  in-process isolation and the missing reference parity recorded; its stats equal pycocotools
  run on the detections the accuracy scenario keeps for the same model;
- an ONNX file built here by hand (onnx.helper, the same weights) with a declarative output
  contract (``model_options.detection_contract``; the CLI's ``--detection-contract``) gives
  the same detections and stats as the torch module;
- the contract itself (:class:`OutputFields`) against NumPy written here, its JSON form, and
  the errors: a wrong output name, bad shapes, a classifier, other backends, int8, a
  classification dataset, an input size that is not the dataset's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

import dlbench
from dlbench import datasets
from dlbench.detection import DetectorOutputs
from dlbench.detection.wrapped import OutputFields
from dlbench.errors import ConfigError, DataError
from dlbench.execution import results as res
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.detection import STAGES

SIZE, PATCH, CLASSES = 64, 16, 4
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
STATS += ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}
CONTRACT = {
    # DETR's layout: the last of the 5 logit columns is "no object"
    "outputs": {
        "kind": "logits_boxes",
        "logits": "logits",
        "boxes": "pred_boxes",
        "no_object": True,
    },
    "box_format": "cxcywh",
    "normalized": True,
    "label_map": {"0": 1, "1": 2, "2": 3, "3": 4},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("shapes-wrap-run"))


def data_fields(root: str, **extra) -> dict:
    return {
        "dataset": "shapes",
        "split": "val",
        "dataset_root": root,
        "dataset_options": {"num_images": 4, "num_train_images": 2, **extra},
        "stop_rule": FAST,
    }


@pytest.fixture(scope="module")
def shapes(root):
    return datasets.load(
        "shapes", root=root, split="val", num_images=4, num_train_images=2, image_size=SIZE
    )


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(12)
    w = rng.normal(0, 0.02, (4 + CLASSES + 1, 3, PATCH, PATCH)).astype(np.float32)
    b = rng.normal(0, 0.5, (4 + CLASSES + 1,)).astype(np.float32)
    return w, b


def contract() -> DetectorOutputs:
    return DetectorOutputs.from_dict(CONTRACT)


@pytest.fixture(scope="module")
def torch_model(weights):
    torch = pytest.importorskip("torch")
    w, b = weights

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

    return dlbench.get_backend("torch").wrap(
        TinyDetr(), input_shape=(3, SIZE, SIZE), detection=contract()
    )


def onnx_file(path, w, b, names=("pred_boxes", "logits")) -> str:
    """The same detector as an ONNX graph written here: Conv (stride 16) -> (N, 16, 9) ->
    split into boxes (sigmoid) and logits."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    c = w.shape[0]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[PATCH, PATCH]),
        helper.make_node("Reshape", ["y", "shape"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["rows"], perm=[0, 2, 1]),
        helper.make_node("Split", ["rows", "sizes"], ["raw_boxes", names[1]], axis=2),
        helper.make_node("Sigmoid", ["raw_boxes"], [names[0]]),
    ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array([0, c, -1], np.int64), "shape"),
        numpy_helper.from_array(np.array([4, c - 4], np.int64), "sizes"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_detr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["N", None, 4]),
            helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["N", None, c - 4]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def pycocotools_stats(gt: dict, rec) -> np.ndarray:
    """pycocotools' 12 stats on the detections an accuracy record kept."""
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


def cell(doc, scenario: str, backend: str | None = None) -> dict:
    (c,) = [
        c
        for c in doc["cells"]
        if c["scenario"] == scenario and (backend is None or c["backend"] == backend)
    ]
    return c


# -- a live torch detector through dlbench.run ------------------------------------------------


@pytest.fixture(scope="module")
def torch_doc(torch_model, root, tmp_path_factory):
    out = tmp_path_factory.mktemp("wrap-run") / "run.json"
    fields = data_fields(root)
    doc = dlbench.run(model=torch_model, scenarios=["accuracy", "latency"], out=out, **fields)
    return doc, out


def test_live_detector_runs_with_coco_stats_and_stages(torch_doc, torch_model, shapes) -> None:
    doc, out = torch_doc
    assert doc["status"] == "complete" and {c["status"] for c in doc["cells"]} == {"ok"}
    acc = cell(doc, "accuracy")
    assert acc["evaluated_samples"] == len(shapes) == 4
    for s in STAGES:  # the timing split, raw samples per image
        assert len(acc["stages"][s]["samples_s"]) == 4
    assert cell(doc, "latency")["timing"]["n"] >= 3
    # the stats: pycocotools on the detections the scenario keeps for the same model
    pipe = dataclasses.replace(torch_model.detection, keep_results=True)
    kept = run_scenario("accuracy", torch_model, shapes, batch_size=1, detection=pipe)
    want = pycocotools_stats(shapes.coco_ground_truth(), kept)
    got = np.array([acc["metrics"][k] for k in STATS])
    assert want.max() > 0  # informative: some stat above zero
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert doc["detection"]["backends"]["torch"]["stats"]["AP"] == acc["metrics"]["AP"]
    # the saved file is a valid result document
    saved = json.loads(out.read_text())
    res.check_document(saved)
    assert saved["config"]["dataset_options"]["image_size"] == SIZE  # the letterbox, said


def test_live_detector_records_contract_isolation_and_parity(torch_doc) -> None:
    doc, _ = torch_doc
    c = doc["model"]["detection_contract"]
    assert c["outputs"] == {
        "kind": "logits_boxes",
        "boxes": "pred_boxes",
        "logits": "logits",
        "activation": "softmax",
        "no_object": True,
    }
    assert c["box_format"] == "cxcywh" and c["label_map"]["3"] == 4
    # the recorded contract is a contract: it reads back as the same one
    assert DetectorOutputs.from_dict(c).to_dict() == {**c, "dropped_unmapped": 0}
    row = doc["backends"]["torch"]["cpu"]
    assert row["settings"]["isolation"] == "in-process"
    assert row["parity"] is None and "no ModelSpec" in row["parity_note"]
    assert doc["model"]["wrapped"]["in_process"] is True
    assert any("in-process" in w for w in doc["warnings"])
    assert cell(doc, "accuracy")["settings"]["postprocess"]["decoder"]["kind"] == "outputs_fields"
    # the run's threads against the model's own: a difference is warned, never silent
    asked = (doc["config"]["intra_op_threads"], doc["config"]["inter_op_threads"])
    got = (
        row["settings"]["intra_op_threads_in_force"],
        row["settings"]["inter_op_threads_in_force"],
    )
    said = [w for w in doc["warnings"] if "thread settings are not in force for torch" in w]
    assert bool(said) == (asked != got)
    assert ("run_threads_not_in_force" in row["settings"]) == (asked != got)


def test_threads_not_applied_is_said() -> None:
    from types import SimpleNamespace

    from dlbench.execution.wrapped_run import _threads_not_applied

    config = SimpleNamespace(intra_op_threads=2, inter_op_threads=1)
    same = {"intra_op_threads_in_force": 2, "inter_op_threads_in_force": 1}
    assert _threads_not_applied(config, "torch", same) is None
    msg = _threads_not_applied(config, "torch", {**same, "inter_op_threads_in_force": 8})
    assert "inter_op_threads: run 1, in force 8" in msg and "intra_op_threads: run" not in msg
    # a backend that reports only what it was asked (ONNX Runtime's None: its default)
    assert _threads_not_applied(config, "onnxruntime", {"intra_op_threads": 2}) is None


# -- an ONNX file with a contract: dlbench.run and the CLI --------------------------------------


@pytest.fixture(scope="module")
def onnx_path(weights, tmp_path_factory):
    w, b = weights
    return onnx_file(tmp_path_factory.mktemp("wrap-onnx") / "tiny_detr.onnx", w, b)


def test_onnx_file_with_contract_equals_the_torch_module(onnx_path, torch_doc, root) -> None:
    fields = data_fields(root, image_size=SIZE)
    doc = dlbench.run(
        model=onnx_path,
        model_options={"detection_contract": CONTRACT},
        scenarios=["accuracy"],
        **fields,
    )
    acc = cell(doc, "accuracy", "onnxruntime")
    assert acc["status"] == "ok" and doc["model"]["onnx_file"]["sha256"]
    assert doc["config"]["model_options"]["detection_contract"]["outputs"]["boxes"] == "pred_boxes"
    torch_acc = cell(torch_doc[0], "accuracy")
    for k in STATS:
        assert acc["metrics"][k] == pytest.approx(torch_acc["metrics"][k], abs=1e-6), k
    assert acc["metrics"]["detections"] == torch_acc["metrics"]["detections"]


def test_cli_detection_contract(onnx_path, root, tmp_path) -> None:
    from dlbench.cli import main

    path = tmp_path / "contract.json"
    path.write_text(json.dumps(CONTRACT))
    out = tmp_path / "cli.json"
    args = ["run", "--model", onnx_path, "--detection-contract", str(path), "--dataset"]
    args += ["shapes", "--split", "val", "--root", root, "-D", "num_images=4"]
    args += ["-D", "num_train_images=2", "-D", f"image_size={SIZE}", "--scenario", "accuracy"]
    assert main([*args, "--out", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["backends"] == ["onnxruntime"]
    assert doc["model"]["detection_contract"]["outputs"]["logits"] == "logits"
    assert cell(doc, "accuracy")["metrics"]["AP"] >= 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"outputs": {"kind": "logits_boxes", "boxes": "pred_boxes"}}')
    args[4] = str(bad)
    assert main([*args, "--out", str(tmp_path / "bad-run.json"), "-q"]) != 0


def test_contract_needs_an_onnx_file(root) -> None:
    with pytest.raises(ConfigError, match="Expected an ONNX file"):
        dlbench.run(
            model="fcos_mobilenet_v2",
            model_options={"detection_contract": CONTRACT},
            **data_fields(root),
        )


def test_contract_naming_a_missing_output_fails_at_wrap(onnx_path) -> None:
    wrong = dict(CONTRACT, outputs={"kind": "logits_boxes", "logits": "logits", "boxes": "boxes"})
    with pytest.raises(DataError, match="output named 'boxes'.*'logits', 'pred_boxes'"):
        dlbench.get_backend("onnxruntime").wrap(
            onnx_path, detection=DetectorOutputs.from_dict(wrong)
        )


# -- what a wrapped detector cannot do in a run: clear errors ----------------------------------


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"backends": ["jax"]}, r"Expected backends=\['torch'\]"),
        ({"precision": "int8"}, "Expected precision float32"),
        ({"dataset_options": {"image_size": 32}}, "Expected dataset option image_size=64"),
        ({"backend_options": {"torch": {"mode": "eager"}}}, "Expected no backend_options"),
        ({"resume": True, "out": "x.json"}, "Expected no resume"),
    ],
)
def test_unsupported_settings_are_errors(torch_model, root, tmp_path, fields, match) -> None:
    base = data_fields(root)
    if "dataset_options" in fields:
        fields = {"dataset_options": {**base["dataset_options"], **fields["dataset_options"]}}
    resume = fields.pop("resume", False)
    out = fields.pop("out", None)
    with pytest.raises(ConfigError, match=match):
        dlbench.run(
            model=torch_model,
            resume=resume,
            out=None if out is None else tmp_path / out,
            **{**base, **fields},
        )


def test_classification_dataset_is_an_error(torch_model) -> None:
    with pytest.raises(ConfigError, match="Expected a detection dataset"):
        dlbench.run(model=torch_model, dataset="digits", scenarios=["accuracy"])


def test_wrapped_classifier_is_an_error() -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    model = dlbench.get_backend("torch").wrap(net, input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="Expected a wrapped detector.*to_onnx"):
        dlbench.run(model=model, dataset="digits")


# -- the declarative contract -----------------------------------------------------------------


def test_boxes_scores_labels_with_valid_counts() -> None:
    f = OutputFields("boxes_scores_labels", scores="s", labels="l", valid="n")
    rng = np.random.default_rng(0)
    out = {
        "boxes": rng.random((2, 5, 4)),
        "s": rng.random((2, 5)),
        "l": rng.integers(0, 3, (2, 5)),
        "n": np.array([[3], [0]]),
    }
    (b0, s0, l0), (b1, s1, l1) = f(out)
    np.testing.assert_array_equal(b0, out["boxes"][0, :3])
    np.testing.assert_array_equal(s0, out["s"][0, :3])
    np.testing.assert_array_equal(l0, out["l"][0, :3])
    assert len(b1) == len(s1) == len(l1) == 0
    with pytest.raises(DataError, match=r"valid counts in \[0, 5\]"):
        f({**out, "n": np.array([6, 1])})
    with pytest.raises(DataError, match=r"scores 's' of shape \(2, 5\)"):
        f({**out, "s": out["s"][:, :4]})
    with pytest.raises(DataError, match="outputs by name"):
        f(out["boxes"])


def test_logits_boxes_activations_against_numpy() -> None:
    z = np.array([[[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]]])
    boxes = np.ones((1, 2, 4))
    sig = OutputFields("logits_boxes", logits="z", activation="sigmoid")
    ((_, s, lab),) = sig({"z": z, "boxes": boxes})
    np.testing.assert_allclose(s, [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-4.0))])
    assert lab.tolist() == [0, 2]
    soft = OutputFields("logits_boxes", logits="z", no_object=True)
    ((_, s, lab),) = soft({"z": z, "boxes": boxes})
    e = np.exp(z[0] - z[0].max(1, keepdims=True))
    p = (e / e.sum(1, keepdims=True))[:, :-1]
    np.testing.assert_allclose(s, p.max(1))
    assert lab.tolist() == [0, 1]  # the second query's best is "no object": its next class
    with pytest.raises(DataError, match=r"logits 'z' of shape \(1, 2, C\)"):
        soft({"z": z[:, :1], "boxes": boxes})


def test_contract_errors() -> None:
    with pytest.raises(ConfigError, match="Expected the outputs `kind`"):
        OutputFields("yolo")
    with pytest.raises(ConfigError, match="Unexpected field.*'scores'"):
        OutputFields("logits_boxes", logits="z", scores="s")
    with pytest.raises(ConfigError, match="`no_object` only with activation 'softmax'"):
        OutputFields("logits_boxes", logits="z", activation="sigmoid", no_object=True)
    with pytest.raises(ConfigError, match="unknown key.*'thresh'"):
        DetectorOutputs.from_dict({**CONTRACT, "thresh": 0.5})
    with pytest.raises(ConfigError, match="Expected 'outputs'"):
        DetectorOutputs.from_dict({"box_format": "xyxy"})


def test_contract_json_file(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**CONTRACT, "score_threshold": 0.1, "iou_threshold": 0.5}))
    c = DetectorOutputs.from_json(path)
    assert c.label_map == {0: 1, 1: 2, 2: 3, 3: 4} and c.iou_threshold == 0.5
    with pytest.raises(ConfigError, match="readable detection contract"):
        DetectorOutputs.from_json(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="to be JSON"):
        DetectorOutputs.from_json(path)


# -- slow: via ONNX, and a Hugging Face DETR --------------------------------------------------


@pytest.mark.slow  # exports the detector (dynamo): ~15 s
def test_live_detector_via_onnx(torch_model, root) -> None:
    doc = dlbench.run(model=torch_model, scenarios=["accuracy"], via_onnx=True, **data_fields(root))
    row = doc["backends"]["torch>onnxruntime"]["cpu"]
    assert row["export"]["output_names"] == ["logits", "pred_boxes"]
    assert row["export"]["parity"]["ok"] and set(row["export"]["parity"]["outputs"]) == {
        "logits",
        "pred_boxes",
    }
    a, b = cell(doc, "accuracy", "torch"), cell(doc, "accuracy", "torch>onnxruntime")
    for k in STATS:
        assert a["metrics"][k] == pytest.approx(b["metrics"][k], abs=1e-6)
    assert doc["detection"]["max_ap_diff"] <= 1e-6


@pytest.mark.slow  # builds a transformers DETR (random weights, no download)
def test_hugging_face_detr_through_run(root) -> None:
    pytest.importorskip("transformers")
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    imagenet = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    backbone = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage4"],
    )
    config = DetrConfig(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        num_labels=4,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=100,
        init_std=0.2,
    )
    torch.manual_seed(0)
    net = DetrForObjectDetection(config).eval()
    with torch.no_grad():  # spread the queries (the default init: one box for all)
        for name, p in net.named_parameters():
            if name.endswith("query_position_embeddings.weight"):
                p.normal_(std=1.0)
        net.bbox_predictor.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, -1.0, -1.0]))
    model = dlbench.get_backend("torch").wrap(
        net, input_shape=(3, SIZE, SIZE), detection=DetectorOutputs.from_dict(CONTRACT)
    )
    fields = data_fields(root, **imagenet)
    doc = dlbench.run(model=model, scenarios=["accuracy", "latency"], **fields)
    acc = cell(doc, "accuracy")
    ds = datasets.load(
        "shapes",
        root=root,
        split="val",
        num_images=4,
        num_train_images=2,
        image_size=SIZE,
        **imagenet,
    )
    pipe = dataclasses.replace(model.detection, keep_results=True)
    kept = run_scenario("accuracy", model, ds, batch_size=1, detection=pipe)
    want = pycocotools_stats(ds.coco_ground_truth(), kept)
    np.testing.assert_allclose([acc["metrics"][k] for k in STATS], want, atol=1e-9)
    assert len(kept["coco_results"]["score"]) == 4 * 100
    bad = {c["id"]: c["validity"] for c in doc["cells"] if c["status"] != "ok"}
    assert not bad, bad
