"""NMS: the float64 reference against a brute-force pure-Python NMS, and every installed backend's
native path against the reference, on adversarial cases (ties, overlap, empty, many classes, the
cap, zero-area and inverted boxes, NaN)."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from dlbench.detection import Detections, box_iou, nms
from dlbench.errors import ConfigError, DataError

# -- an independent brute-force NMS (pure Python floats, per class, then merged) -------------


def _iou_py(a, b) -> float:
    ax1, ax2 = sorted((a[0], a[2]))
    ay1, ay2 = sorted((a[1], a[3]))
    bx1, bx2 = sorted((b[0], b[2]))
    by1, by2 = sorted((b[1], b[3]))
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / (area_a + area_b - inter)


def brute_force_nms(boxes, scores, labels, iou_thr, score_thr, max_det) -> list[int]:
    boxes = [[float(v) for v in b] for b in np.asarray(boxes).reshape(-1, 4)]
    scores = [float(s) for s in scores]
    labels = [int(v) for v in labels]
    kept: list[int] = []
    for c in sorted(set(labels)):
        cand = [i for i in range(len(scores)) if labels[i] == c and scores[i] > score_thr]
        cand.sort(key=lambda i: (-scores[i], i))
        mine: list[int] = []
        for i in cand:
            if all(_iou_py(boxes[i], boxes[j]) <= iou_thr for j in mine):
                mine.append(i)
        kept.extend(mine)
    kept.sort(key=lambda i: (-scores[i], i))
    return kept[:max_det]


# -- adversarial cases ----------------------------------------------------------------------


@dataclass
class Case:
    id: str
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    iou: float = 0.5
    score_thr: float = 0.0625  # float32-representable: natives compare in float32
    max_det: int = 100
    #: native paths that cannot report indices are compared as value multisets; ``order`` says
    #: whether the output order is fully determined without the index tie-break
    tags: set[str] = field(default_factory=set)


def _f32(x) -> np.ndarray:
    """Values representable in float32, so native float32 paths see the same numbers."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _random_boxes(rng, n: int, size: float = 640.0) -> np.ndarray:
    xy = rng.uniform(0, size * 0.8, (n, 2))
    wh = rng.uniform(4, size * 0.3, (n, 2))
    return np.round(np.concatenate([xy, xy + wh], axis=1) * 4) / 4


def _distinct_scores(rng, n: int) -> np.ndarray:
    # distinct float32 values in (0.06, 1): a permutation of a grid, so no accidental ties
    return _f32(0.06 + 0.93 * rng.permutation(n) / max(n, 1) + 1e-4)


def make_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    cases: list[Case] = []
    # exact ties: identical boxes and equal scores (lower index must win), in one and two classes
    base = np.array([[10, 10, 50, 50]] * 4 + [[12, 10, 52, 50], [200, 200, 240, 260]], float)
    cases.append(
        Case(
            "exact_ties",
            base,
            _f32([0.7, 0.7, 0.7, 0.9, 0.7, 0.7]),
            np.array([0, 0, 1, 1, 0, 0]),
            tags={"ties"},
        )
    )
    # equal scores on disjoint boxes: only the order (lower index first) is at stake
    disjoint = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(8)], float)
    cases.append(
        Case("tied_disjoint", disjoint, _f32([0.5] * 8), np.array([3, 1, 2, 0] * 2), tags={"ties"})
    )
    # all boxes overlapping heavily: one survivor per class
    centre = np.array([100, 100, 200, 200], float)
    jitter = np.round(rng.uniform(-3, 3, (60, 4)) * 4) / 4
    cases.append(
        Case(
            "all_overlapping_one_class",
            centre + jitter,
            _distinct_scores(rng, 60),
            np.zeros(60, int),
        )
    )
    cases.append(
        Case(
            "all_overlapping_many_classes",
            centre + jitter,
            _distinct_scores(rng, 60),
            rng.integers(0, 5, 60),
        )
    )
    cases.append(Case("no_boxes", np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)))
    cases.append(
        Case(
            "all_below_threshold",
            _random_boxes(rng, 10),
            _f32([0.0625] * 5 + [0.01] * 5),
            np.arange(10) % 3,
        )
    )
    cases.append(Case("one_box", np.array([[1, 2, 3, 4.0]]), _f32([0.3]), np.array([7])))
    n = 300
    cases.append(
        Case("one_class_random", _random_boxes(rng, n), _distinct_scores(rng, n), np.zeros(n, int))
    )
    n = 600
    cases.append(
        Case(
            "many_classes_random",
            _random_boxes(rng, n),
            _distinct_scores(rng, n),
            rng.integers(0, 80, n),
            iou=0.6,
        )
    )
    # the cap: 300 disjoint boxes, 100 kept; and a cap that falls inside a run of equal scores
    grid = np.array(
        [[x * 20, y * 20, x * 20 + 10, y * 20 + 10] for y in range(15) for x in range(20)], float
    )
    cases.append(
        Case("max_detections_cap", grid, _distinct_scores(rng, 300), rng.integers(0, 3, 300))
    )
    tied = _f32(np.r_[np.full(90, 0.9), np.full(30, 0.5), np.full(180, 0.3)])
    cases.append(
        Case("cap_inside_ties", grid, tied, rng.integers(0, 3, 300), max_det=100, tags={"ties"})
    )
    cases.append(Case("cap_zero", grid[:5], _f32([0.5] * 5), np.zeros(5, int), max_det=0))
    # zero-area (IoU 0: never suppresses, never suppressed) and inverted boxes (corners swapped)
    boxes = np.array(
        [
            [10, 10, 10, 50],  # zero width
            [10, 10, 50, 10],  # zero height
            [30, 30, 30, 30],  # a point
            [10, 10, 50, 50],
            [50, 50, 10, 10],  # the same box, inverted: suppressed by the one above
            [52, 10, 12, 50],  # inverted x only, overlaps heavily
            [300, 300, 260, 260],  # inverted, alone
        ],
        float,
    )
    cases.append(
        Case(
            "zero_area_and_inverted",
            boxes,
            _f32([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65]),
            np.zeros(7, int),
        )
    )
    # IoU exactly at the threshold is kept; just above is suppressed
    boxes = np.array([[0, 0, 3, 1], [1, 0, 4, 1], [0, 5, 4, 6], [1, 5, 4, 6]], float)
    cases.append(Case("iou_at_threshold", boxes, _f32([0.9, 0.8, 0.7, 0.6]), np.zeros(4, int)))
    # -inf scores never pass; a very low threshold keeps everything else
    boxes = _random_boxes(rng, 20)
    s = _distinct_scores(rng, 20)
    s[::4] = -np.inf
    cases.append(Case("neg_inf_scores", boxes, s, np.arange(20) % 2, score_thr=-1e30))
    return cases


CASES = make_cases()


# -- the reference ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reference_matches_brute_force(case: Case) -> None:
    got = nms(case.boxes, case.scores, case.labels, case.iou, case.score_thr, case.max_det)
    want = brute_force_nms(
        case.boxes, case.scores, case.labels, case.iou, case.score_thr, case.max_det
    )
    assert got.indices.tolist() == want
    np.testing.assert_array_equal(got.boxes, case.boxes[want].reshape(-1, 4))
    np.testing.assert_array_equal(got.labels, case.labels[want])
    assert got.boxes.dtype == np.float64 and got.labels.dtype == np.int64


def test_brute_force_catches_a_wrong_answer() -> None:
    c = next(c for c in CASES if c.id == "exact_ties")
    want = brute_force_nms(c.boxes, c.scores, c.labels, c.iou, c.score_thr, c.max_det)
    # a tie broken the other way (higher index first) differs from the documented order
    wrong = sorted(want, key=lambda i: (-c.scores[i], -i))
    assert wrong != want
    # IoU >= instead of > keeps fewer boxes on the at-threshold case
    c = next(c for c in CASES if c.id == "iou_at_threshold")
    assert len(brute_force_nms(c.boxes, c.scores, c.labels, c.iou, c.score_thr, 100)) == 3
    assert len(brute_force_nms(c.boxes, c.scores, c.labels, c.iou - 1e-9, c.score_thr, 100)) == 2


def test_documented_semantics() -> None:
    ties = nms(np.array([[0, 0, 1, 1]] * 3, float), np.array([0.5, 0.5, 0.5]))
    assert ties.indices.tolist() == [0]
    zero = nms(np.array([[0, 0, 0, 5], [0, 0, 0, 5]], float), np.array([0.9, 0.8]))
    assert zero.indices.tolist() == [0, 1]
    inv = nms(np.array([[0, 0, 4, 4], [4, 4, 0, 0]], float), np.array([0.8, 0.9]))
    assert inv.indices.tolist() == [1] and inv.boxes.tolist() == [[4, 4, 0, 0]]
    assert nms(np.zeros((0, 4)), np.zeros(0)).boxes.shape == (0, 4)
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))[0, 0] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"scores": [0.5, float("nan")]}, DataError),
        ({"boxes": [[0, 0, 1, float("nan")], [0, 0, 1, 1]]}, DataError),
        ({"boxes": [[0, 0, 1, float("inf")], [0, 0, 1, 1]]}, DataError),
        ({"boxes": [[0, 0, 1], [0, 0, 1]]}, DataError),
        ({"labels": [0, -1]}, DataError),
        ({"labels": [0, 0.5]}, DataError),
        ({"scores": [0.5]}, DataError),
        ({"iou_threshold": 1.5}, ConfigError),
        ({"max_detections": -1}, ConfigError),
        ({"score_threshold": float("nan")}, ConfigError),
    ],
)
def test_reference_bad_inputs(kwargs, error) -> None:
    args = {
        "boxes": [[0, 0, 1, 1], [0, 0, 2, 2]],
        "scores": [0.5, 0.4],
        "labels": [0, 0],
        "iou_threshold": 0.5,
        "score_threshold": 0.0,
        "max_detections": 100,
    }
    args.update(kwargs)
    args = {k: np.asarray(v) if isinstance(v, list) else v for k, v in args.items()}
    with pytest.raises(error):
        nms(**args)


def test_nan_error_names_the_problem() -> None:
    with pytest.raises(DataError, match="NaN"):
        nms(np.zeros((2, 4)), np.array([np.nan, 0.1]))


# -- native paths ----------------------------------------------------------------------------

BACKENDS = ["numpy", "torch", "tensorflow", "jax", "onnxruntime"]


def native(name: str):
    fw = {
        "numpy": None,
        "torch": "torch",
        "tensorflow": "tensorflow",
        "jax": "jax",
        "onnxruntime": "onnxruntime",
    }[name]
    if fw is not None:
        pytest.importorskip(fw)
    return importlib.import_module(f"dlbench.backends.{name}.postprocess")


def assert_same_detections(
    ref: Detections, got: Detections, *, rtol: float = 1e-5, atol: float = 1e-3
) -> None:
    """Same set (by index when the native path reports them, else by value); same order;
    scores and boxes within float tolerance."""
    assert len(got) == len(ref), f"{len(got)} detections, reference {len(ref)}"
    if len(ref) == 0:
        return
    if got.indices is not None:
        assert got.indices.tolist() == ref.indices.tolist()
    else:
        # order by (label, score, box) on both sides: a multiset comparison by value
        def order(d: Detections) -> np.ndarray:
            b = np.round(np.asarray(d.boxes, np.float64), 2)
            return np.lexsort(
                (b[:, 3], b[:, 2], b[:, 1], b[:, 0], -np.round(d.scores, 5), d.labels)
            )

        r, g = order(ref), order(got)
        ref = Detections(ref.boxes[r], ref.scores[r], ref.labels[r])
        got = Detections(
            np.asarray(got.boxes)[g], np.asarray(got.scores)[g], np.asarray(got.labels)[g]
        )
    np.testing.assert_array_equal(np.asarray(got.labels, np.int64), ref.labels)
    np.testing.assert_allclose(np.asarray(got.scores, np.float64), ref.scores, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got.boxes, np.float64), ref.boxes, rtol=rtol, atol=atol)


def _score_multiset(d: Detections) -> list:
    return sorted(np.round(np.asarray(d.scores, np.float64), 6).tolist())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_native_nms_matches_reference(backend: str, case: Case) -> None:
    mod = native(backend)
    ref = nms(case.boxes, case.scores, case.labels, case.iou, case.score_thr, case.max_det)
    got = mod.nms(case.boxes, case.scores, case.labels, case.iou, case.score_thr, case.max_det)
    assert isinstance(got, Detections)
    if "ties" in case.tags and mod.TIES_UNORDERED:
        # documented: which of equal scores survive (and their order) is unspecified; the count
        # and the score multiset still match, and every detection is one of the inputs
        assert len(got) == len(ref)
        assert _score_multiset(got) == _score_multiset(ref)
        inputs = {
            (int(lab), *np.asarray(b, np.float64).tolist())
            for lab, b in zip(case.labels, case.boxes)
        }
        for lab, b in zip(got.labels, np.asarray(got.boxes, np.float64)):
            assert (int(lab), *b.tolist()) in inputs
        return
    assert_same_detections(ref, got)
    from dlbench.detection import compare_detections

    record = compare_detections(ref, got)
    assert record["ok"], record
    assert record["same_order"] or got.indices is None, record


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_nms_nan_is_an_error(backend: str) -> None:
    mod = native(backend)
    with pytest.raises(DataError, match="NaN"):
        mod.nms(np.zeros((2, 4)), np.array([np.nan, 0.1]), np.zeros(2, int), 0.5, 0.0, 100)


def test_comparison_catches_a_wrong_native_answer() -> None:
    c = next(c for c in CASES if c.id == "many_classes_random")
    ref = nms(c.boxes, c.scores, c.labels, c.iou, c.score_thr, c.max_det)
    # class-agnostic NMS keeps a different set
    wrong = nms(c.boxes, c.scores, np.zeros_like(c.labels), c.iou, c.score_thr, c.max_det)
    with pytest.raises(AssertionError):
        assert_same_detections(ref, wrong)
    # a box off by one pixel is caught, also by value
    moved = Detections(ref.boxes + np.eye(1, 4), ref.scores, ref.labels)
    with pytest.raises(AssertionError):
        assert_same_detections(ref, moved)
    assert math.isfinite(float(ref.scores[0]))


# -- the whole post-processing stage, native vs reference ------------------------------------


def _raw(kind: str, size: int, classes: int, seed: int):
    from dlbench.detection import Decoder

    d = Decoder(kind, input_size=size, num_classes=classes, score_threshold=0.3, iou_threshold=0.5)
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 1.5, (2, d.num_rows, d.row_width)).astype(np.float32)
    if kind == "points":
        raw[..., :4] = np.abs(raw[..., :4]) * 3
    else:
        raw[..., :4] *= 0.3
    return d, raw


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["points", "anchors"])
def test_native_postprocess_matches_reference(backend: str, kind: str) -> None:
    mod = native(backend)
    d, raw = _raw(kind, 64, 4, seed=3)
    ref = d.postprocess(raw)
    got = mod.postprocess(d, raw)
    assert len(got) == len(ref) == 2
    for r, g in zip(ref, got):
        assert len(r) > 10  # the case exercises NMS and the cap
        assert_same_detections(r, g, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_postprocess_rejects_mismatched_output(backend: str) -> None:
    mod = native(backend)
    d, raw = _raw("points", 64, 4, seed=0)
    with pytest.raises(DataError, match="Expected raw detector output"):
        mod.postprocess(d, raw[:, :-1])


def test_compare_detections_record() -> None:
    from dlbench.detection import compare_detections

    c = next(c for c in CASES if c.id == "many_classes_random")
    ref = nms(c.boxes, c.scores, c.labels, c.iou, c.score_thr, c.max_det)
    same = compare_detections(ref, ref)
    assert same["ok"] and same["matched_by"] == "index" and same["same_order"]
    # by value (no indices), in another order, float32 boxes
    perm = np.arange(len(ref))[::-1]
    by_value = Detections(ref.boxes[perm].astype(np.float32), ref.scores[perm], ref.labels[perm])
    r = compare_detections(ref, by_value)
    assert r["ok"] and r["matched_by"] == "value" and not r["same_order"]
    # wrong answers: class-agnostic NMS, one box moved, one detection missing
    agnostic = nms(c.boxes, c.scores, np.zeros_like(c.labels), c.iou, c.score_thr, c.max_det)
    assert not compare_detections(ref, agnostic)["ok"]
    moved = Detections(ref.boxes + np.eye(len(ref), 4)[:, ::-1], ref.scores, ref.labels)
    assert not compare_detections(ref, moved)["ok"]
    fewer = Detections(ref.boxes[:-1], ref.scores[:-1], ref.labels[:-1], ref.indices[:-1])
    r = compare_detections(ref, fewer)
    assert not r["ok"] and r["matched"] == len(ref) - 1
    import json

    json.dumps(r)
