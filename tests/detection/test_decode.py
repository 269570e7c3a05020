"""Decoding (grid points, anchors, box transforms), the post-processing pipeline and letterbox."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlbench.detection import (
    Decoder,
    decode_anchor_boxes,
    decode_point_boxes,
    grid_points,
    letterbox,
    letterbox_boxes,
    letterbox_params,
    make_anchors,
    nms,
    sigmoid,
    unletterbox_boxes,
)
from dlbench.errors import ConfigError, DataError


def test_grid_points_layout() -> None:
    pts, strides = grid_points((64, 32), (8, 16, 32))
    assert pts.shape == (8 * 4 + 4 * 2 + 2 * 1, 2)
    # level 0: row-major (y then x), centres at (x + 0.5) * 8
    assert pts[:5].tolist() == [[4, 4], [12, 4], [20, 4], [28, 4], [4, 12]]
    assert strides[:32].tolist() == [8.0] * 32 and strides[-1] == 32
    assert pts[-1].tolist() == [16, 48]
    zero, _ = grid_points((32, 32), (8, 16, 32), offset=0.0)
    assert zero[1].tolist() == [8, 0]


def test_anchors_match_torchvision_formula() -> None:
    # torchvision AnchorGenerator for size 32, ratio 0.5: h = 32*sqrt(.5), w = 32/sqrt(.5)
    a = make_anchors((32, 32), (8, 16, 32), ((32,), (64,), (128,)), (0.5, 1.0, 2.0), offset=0.0)
    assert a.shape == ((16 + 4 + 1) * 3, 4)
    w, h = 32 / math.sqrt(0.5), 32 * math.sqrt(0.5)
    assert a[0].tolist() == [round(-w / 2), round(-h / 2), round(w / 2), round(h / 2)]
    assert a[1].tolist() == [-16, -16, 16, 16]
    # next location (x=1 at stride 8), anchors fastest
    assert a[4].tolist() == [8 - 16, -16, 8 + 16, 16]
    a2 = make_anchors((32, 32), offset=0.5)
    assert a2.shape == ((16 + 4 + 1) * 9, 4)
    with pytest.raises(ConfigError):
        make_anchors((32, 32), (8, 16, 32), ((32,),))


def test_box_transforms() -> None:
    pts = np.array([[100.0, 50.0]])
    box = decode_point_boxes(pts, np.array([8.0]), np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert box.tolist() == [[92, 34, 124, 82]]
    anchors = np.array([[0.0, 0.0, 10.0, 20.0]])
    assert decode_anchor_boxes(anchors, np.zeros((1, 4))).tolist() == [[0, 0, 10, 20]]
    d = decode_anchor_boxes(anchors, np.array([[0.1, -0.2, math.log(2), 0.0]]))
    np.testing.assert_allclose(d, [[-4, -4, 16, 16]])
    # dw/dh clamped at log(1000/16)
    big = decode_anchor_boxes(anchors, np.array([[0, 0, 50.0, 50.0]]))
    np.testing.assert_allclose(big[0, 2] - big[0, 0], 10 * 1000 / 16)


def test_sigmoid_stable() -> None:
    x = np.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(sigmoid(x), [0, 0.5, 1])


@pytest.mark.parametrize("size", [320, 640, (320, 640)])
def test_decoder_sizes(size) -> None:
    d = Decoder("anchors", input_size=size, num_classes=5)
    hw = (size, size) if isinstance(size, int) else size
    assert d.num_rows == 9 * sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
    assert d.row_width == 9


@pytest.mark.parametrize("size", [300, 16, 0, (320, 100), "320", True])
def test_decoder_size_not_a_multiple_is_a_clear_error(size) -> None:
    with pytest.raises(ConfigError, match="multiple of its largest stride 32"):
        Decoder("points", input_size=size, num_classes=3)


def test_decoder_rejects_mismatched_raw_output() -> None:
    d = Decoder("points", input_size=64, num_classes=3)
    with pytest.raises(DataError, match=r"\(N, 84, 8\)"):
        d.decode(np.zeros((1, 84, 7)))
    with pytest.raises(ConfigError):
        Decoder("boxes", input_size=64, num_classes=3)


def _brute_postprocess(d: Decoder, raw: np.ndarray):
    """The pipeline written out per row, with the reference NMS (checks decode + top-k + clip)."""
    out = []
    for r in raw.astype(np.float64):
        cands = []
        for i in range(d.num_rows):
            if d.kind == "points":
                cx, cy = d.priors[i]
                s = d.prior_strides[i]
                left, t, rr, b = r[i, :4]
                box = [cx - left * s, cy - t * s, cx + rr * s, cy + b * s]
                ctr = 1 / (1 + math.exp(-r[i, 4]))
                scores = [math.sqrt(ctr / (1 + math.exp(-v))) for v in r[i, 5:]]
            else:
                x1, y1, x2, y2 = d.priors[i]
                wa, ha = x2 - x1, y2 - y1
                cx, cy = x1 + wa / 2 + r[i, 0] * wa, y1 + ha / 2 + r[i, 1] * ha
                w = math.exp(min(r[i, 2], math.log(1000 / 16))) * wa
                h = math.exp(min(r[i, 3], math.log(1000 / 16))) * ha
                box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                scores = [1 / (1 + math.exp(-v)) for v in r[i, 4:]]
            hgt, wid = d.hw
            box = [
                min(max(box[0], 0), wid),
                min(max(box[1], 0), hgt),
                min(max(box[2], 0), wid),
                min(max(box[3], 0), hgt),
            ]
            for c, s in enumerate(scores):
                if s > d.score_threshold:
                    cands.append((-s, i * d.num_classes + c, box, c, s))
        cands.sort(key=lambda t: (t[0], t[1]))
        cands = cands[: d.pre_nms_top_k]
        boxes = np.array([c[2] for c in cands]).reshape(-1, 4)
        kept = nms(
            boxes,
            np.array([c[4] for c in cands]),
            np.array([c[3] for c in cands], int),
            d.iou_threshold,
            d.score_threshold,
            d.max_detections,
        )
        out.append((np.array([cands[k][1] for k in kept.indices], np.int64), kept))
    return out


@pytest.mark.parametrize("kind", ["points", "anchors"])
def test_postprocess_matches_brute_force(kind: str) -> None:
    d = Decoder(
        kind, input_size=64, num_classes=3, pre_nms_top_k=50, max_detections=20, score_threshold=0.3
    )
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 1, (2, d.num_rows, d.row_width)).astype(np.float32)
    if kind == "points":
        raw[..., :4] = np.abs(raw[..., :4]) * 2
    got = d.postprocess(raw)
    want = _brute_postprocess(d, raw)
    assert len(got) == 2
    for g, (flat, w) in zip(got, want):
        assert 0 < len(g) <= 20
        assert g.indices.tolist() == flat.tolist()
        np.testing.assert_allclose(g.boxes, w.boxes, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(g.scores, w.scores, rtol=1e-12)
        assert g.boxes.min() >= 0 and g.boxes.max() <= 64


def test_letterbox_params_follow_ultralytics() -> None:
    p = letterbox_params((480, 640), 320)
    assert (p.scale, p.new_size, p.left, p.top) == (0.5, (240, 320), 0, 40)
    # odd padding: round(dw - 0.1) puts the extra pixel right/bottom
    p = letterbox_params((100, 201), 64)
    assert p.new_size == (32, 64) and p.top == 16
    p = letterbox_params((101, 100), 64)
    assert p.new_size[0] == 64 and p.left == round((64 - p.new_size[1]) / 2 - 0.1)


def test_letterbox_image_and_box_round_trip() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)
    out, p = letterbox(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[: p.top] == 114).all() and (out[p.top + p.new_size[0] :] == 114).all()
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    same, p1 = letterbox(square, 64)
    assert (same == square).all()
    assert p1.scale == 1.0 and p1.left == 0
    boxes = np.array([[0, 0, 80, 50], [10.5, 20.25, 30, 40]])
    back = unletterbox_boxes(letterbox_boxes(boxes, p), p)
    np.testing.assert_allclose(back, boxes, atol=1e-9)
    # outside the image: clipped to the original size
    clipped = unletterbox_boxes(np.array([[-10, -10, 100, 100]]), p)
    assert clipped.tolist() == [[0, 0, 80, 50]]
    with pytest.raises(DataError):
        letterbox(np.zeros((0, 5, 3), np.uint8), 64)
    with pytest.raises(ConfigError):
        letterbox_params((10, 10), 0)


def test_letterbox_constant_image_stays_constant() -> None:
    img = np.full((37, 91, 3), 200, np.uint8)
    out, p = letterbox(img, 128)
    inner = out[p.top : p.top + p.new_size[0], p.left : p.left + p.new_size[1]]
    assert (inner == 200).all()


def test_unletterbox_with_a_dataset_target_dict() -> None:
    t = {"scale": 0.5, "pad_x": 3.0, "pad_y": 7.0, "orig_width": 100, "orig_height": 50}
    boxes = np.array([[3.0, 7.0, 53.0, 32.0], [0, 0, 200, 200]])
    back = unletterbox_boxes(boxes, t)
    assert back.tolist() == [[0, 0, 100, 50], [0, 0, 100, 50]]
    np.testing.assert_allclose(letterbox_boxes(back[:1], t), boxes[:1])
    assert unletterbox_boxes(boxes, {"scale": 0.5, "pad_x": 0, "pad_y": 0}, clip=True)[1, 2] == 400
    with pytest.raises(DataError, match="letterbox parameters"):
        unletterbox_boxes(boxes, {"scale": 0.5})
    with pytest.raises(DataError, match="positive letterbox scale"):
        unletterbox_boxes(boxes, {"scale": 0, "pad_x": 0, "pad_y": 0})


def test_to_coco_results_checks_lengths() -> None:
    from dlbench.detection import Detections, to_coco_results

    d = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    with pytest.raises(DataError):
        to_coco_results([d, d], [{"image_id": 1, "scale": 1, "pad_x": 0, "pad_y": 0}])
    empty = to_coco_results([], [])
    assert empty["bbox"].shape == (0, 4)
    one = to_coco_results([d], [{"image_id": 1, "scale": 1, "pad_x": 0, "pad_y": 0}])
    assert one["image_id"].shape == (0,)
