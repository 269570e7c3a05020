"""Detectors nobody here wrote, through ``wrap(..., detection=...)`` and the accuracy scenario:
Hugging Face ``transformers`` DETR and YOLOS built from small configs with random weights (no
download; DETR on a tiny ResNet backbone instead of its timm one), and torchvision's detectors
where torchvision imports (the registry's CUDA wheels do not import beside the CPU torch pinned
here: those tests skip).

For each, the scenario's 12 COCO stats equal pycocotools run directly on the detections the
scenario recorded, and those detections equal Hugging Face's own post-processing
(``post_process_object_detection``) of the same outputs, mapped back through each image's
letterbox here. Random weights give a low AP: the point is the pipeline and the equality.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

from dlbench import datasets
from dlbench.detection import DetectorOutputs
from dlbench.execution.scenarios import run_scenario
from dlbench.execution.scenarios.detection import STAGES
from dlbench.model.backend import get_backend

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SIZE = 64
QUERIES = 100  # COCO evaluates 100 per image
#: the learned queries of DETR and YOLOS
QUERY_PARAMS = ("query_position_embeddings.weight", "detection_tokens")
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
STAT_ORDER = ("AP", "AP50", "AP75", "APs", "APm", "APl")
STAT_ORDER += ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """4 shapes val images letterboxed to 64 px and normalised as DETR expects (ImageNet)."""
    root = tmp_path_factory.mktemp("shapes-hf")
    return datasets.load(
        "shapes",
        root=str(root),
        split="val",
        num_images=4,
        num_train_images=2,
        image_size=SIZE,
        **IMAGENET,
    )


def detr(num_labels: int):
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    backbone = ResNetConfig(
        num_channels=3,
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
        num_labels=num_labels,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=QUERIES,
        init_std=0.2,  # ~1/sqrt(d_model): the queries attend to different places
    )
    torch.manual_seed(0)
    return spread_boxes(DetrForObjectDetection(config)), 32


def yolos(num_labels: int):
    from transformers import YolosConfig, YolosForObjectDetection

    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=[SIZE, SIZE],
        patch_size=16,
        num_detection_tokens=QUERIES,
        num_labels=num_labels,
    )
    torch.manual_seed(1)
    return spread_boxes(YolosForObjectDetection(config)), 16


def spread_boxes(net):
    """Random queries and heads large enough that the queries differ (the default init, std
    0.02, makes every query the same centred box of one class, which no object matches: all
    stats 0)."""
    queries = [p for n, p in net.named_parameters() if n.endswith(QUERY_PARAMS)]
    assert queries, "no query parameters found"
    heads = [*net.bbox_predictor.modules(), *net.class_labels_classifier.modules()]
    with torch.no_grad():
        for q in queries:
            torch.nn.init.normal_(q, std=1.0)
        for layer in heads:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=1.5 / layer.in_features**0.5)
                torch.nn.init.zeros_(layer.bias)
        net.bbox_predictor.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, -1.0, -1.0]))
    return net


def processor(kind: str):
    """Hugging Face's image processor for the model (its PIL flavour: no torchvision needed)."""
    mod = transformers
    name = {"detr": "DetrImageProcessor", "yolos": "YolosImageProcessor"}[kind]
    cls = getattr(mod, f"{name}Pil", None) or getattr(mod, name)
    return cls()


def set_prediction(out):
    """The user's function (NumPy): softmax, DETR's "no object" column dropped, best class."""
    z = np.asarray(out["logits"], np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    p = (e / e.sum(-1, keepdims=True))[..., :-1]
    return [(b, q.max(-1), q.argmax(-1)) for b, q in zip(out["pred_boxes"], p)]


def hf_reference(kind: str, model, ds, categories) -> list[tuple]:
    """Hugging Face's post-processing of the model's outputs, mapped back by hand."""
    proc = processor(kind)
    rows = []
    for i in range(len(ds)):
        batch = ds.get_batch([i])
        t = batch.targets[0]
        with torch.no_grad():
            out = model(torch.from_numpy(batch.inputs))
        (res,) = proc.post_process_object_detection(out, threshold=0.0, target_sizes=[(SIZE, SIZE)])
        for box, score, label in zip(res["boxes"].numpy(), res["scores"].numpy(), res["labels"]):
            x1, x2 = (min(max(float(v), 0.0), SIZE) for v in (box[0], box[2]))
            y1, y2 = (min(max(float(v), 0.0), SIZE) for v in (box[1], box[3]))
            ox1 = min(max((x1 - t["pad_x"]) / t["scale"], 0), t["orig_width"])
            oy1 = min(max((y1 - t["pad_y"]) / t["scale"], 0), t["orig_height"])
            ox2 = min(max((x2 - t["pad_x"]) / t["scale"], 0), t["orig_width"])
            oy2 = min(max((y2 - t["pad_y"]) / t["scale"], 0), t["orig_height"])
            cat = categories[int(label)]
            rows.append((int(t["image_id"]), cat, ox1, oy1, ox2 - ox1, oy2 - oy1, float(score)))
    return sorted(rows)


def recorded(rec) -> list[tuple]:
    r = rec["coco_results"]
    return sorted(
        (int(i), int(c), *map(float, bb), float(s))
        for i, c, bb, s in zip(r["image_id"], r["category_id"], r["bbox"], r["score"])
    )


def pycocotools_stats(gt: dict, rec) -> np.ndarray:
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


def accuracy(model, ds):
    pipe = dataclasses.replace(model.detection, keep_results=True)
    return run_scenario("accuracy", model, ds, batch_size=1, detection=pipe)


@pytest.mark.parametrize("kind", ["detr", "yolos"])
def test_hugging_face_detector_equals_pycocotools_and_its_own_postprocessing(shapes, kind) -> None:
    categories = [int(c["id"]) for c in shapes.coco_ground_truth()["categories"]]
    net, stride = {"detr": detr, "yolos": yolos}[kind](len(categories))
    spec = DetectorOutputs(
        set_prediction,
        box_format="cxcywh",
        normalized=True,
        label_map=categories,  # model class i -> the dataset's i-th category id
        stride=stride,
    )
    model = get_backend("torch").wrap(net, input_shape=(3, SIZE, SIZE), detection=spec)
    rec = accuracy(model, shapes)
    stats = np.array([rec["metrics"][k] for k in STAT_ORDER])
    assert stats.max() > 0  # some stat above zero: the comparison is informative
    np.testing.assert_allclose(stats, pycocotools_stats(shapes.coco_ground_truth(), rec), atol=1e-9)
    got, want = recorded(rec), hf_reference(kind, net, shapes, categories)
    assert len(got) == len(want) == len(shapes) * QUERIES
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2:] for g in got], [w[2:] for w in want], atol=1e-4)
    assert rec["metrics"]["detections"] == len(got)
    assert rec["validity"]["valid"] and rec["evaluated_samples"] == len(shapes)
    for s in STAGES:
        assert len(rec["stages"][s]["samples_s"]) == len(shapes)


def test_hugging_face_postprocessing_as_the_outputs_function(shapes) -> None:
    """The user's function may be Hugging Face's own post-processing (torch tensors back from
    NumPy, boxes xyxy in input pixels): the same detections as the NumPy function."""
    categories = [int(c["id"]) for c in shapes.coco_ground_truth()["categories"]]
    net, stride = detr(len(categories))
    proc = processor("detr")
    from transformers.models.detr.modeling_detr import DetrObjectDetectionOutput

    def hf_outputs(out):
        o = DetrObjectDetectionOutput(
            logits=torch.from_numpy(out["logits"]), pred_boxes=torch.from_numpy(out["pred_boxes"])
        )
        n = len(out["logits"])
        res = proc.post_process_object_detection(o, threshold=0.0, target_sizes=[(SIZE, SIZE)] * n)
        return [{k: r[k].numpy() for k in ("boxes", "scores", "labels")} for r in res]

    spec = DetectorOutputs(hf_outputs, box_format="xyxy", label_map=categories, stride=stride)
    model = get_backend("torch").wrap(net, input_shape=(3, SIZE, SIZE), detection=spec)
    got = recorded(accuracy(model, shapes))
    want = hf_reference("detr", net, shapes, categories)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2:] for g in got], [w[2:] for w in want], atol=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        "ssdlite320_mobilenet_v3_large",
        pytest.param("retinanet_resnet50_fpn", marks=pytest.mark.slow),
    ],
)
def test_torchvision_detector(tmp_path_factory, name) -> None:
    """torchvision's detectors (random weights) return final boxes in the input's pixels: the
    outputs function only reads them; its labels 1..4 are the shapes category ids."""
    try:
        import torchvision.models.detection as tvd
    except Exception as exc:  # the registry's CUDA wheels: operator torchvision::nms missing
        pytest.skip(f"torchvision does not import here: {type(exc).__name__}: {exc}")
    size = 320
    ds = datasets.load(
        "shapes",
        root=str(tmp_path_factory.mktemp(f"shapes-{name}")),
        split="val",
        num_images=2,
        num_train_images=1,
        image_size=size,
    )
    torch.manual_seed(0)
    net = getattr(tvd, name)(weights=None, weights_backbone=None, num_classes=5)
    net.transform.min_size, net.transform.max_size = (size,), size

    class AsBatch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(list(x))  # one dict of boxes / scores / labels per image

    def read(out):
        return [(d["boxes"], d["scores"], d["labels"]) for d in out]

    label_map = {1: 1, 2: 2, 3: 3, 4: 4}  # 0 is torchvision's background
    spec = DetectorOutputs(read, box_format="xyxy", label_map=label_map)
    model = get_backend("torch").wrap(AsBatch(), input_shape=(3, size, size), detection=spec)
    rec = accuracy(model, ds)
    if rec["metrics"]["detections"]:
        stats = np.array([rec["metrics"][k] for k in STAT_ORDER])
        np.testing.assert_allclose(stats, pycocotools_stats(ds.coco_ground_truth(), rec), atol=1e-9)
    assert rec["evaluated_samples"] == len(ds)
