"""Parity that can fail: relative to the reference's own scale, and never "ok" on a reference
that cannot tell right from wrong (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlbench.analysis import parity


def _logits(scale: float, n: int = 64, k: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, k)) * scale


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _wrong_outputs(ref: np.ndarray) -> dict[str, np.ndarray]:
    single = ref.copy()
    single[3] = ref[4]  # one sample answered with another sample's output
    perm = np.roll(np.arange(ref.shape[1]), 1)
    return {
        "zeros": np.zeros_like(ref),
        "negation": -ref,
        "permuted classes": ref[:, perm],
        "single wrong sample": single,
    }


@pytest.mark.parametrize("scale", [1e-12, 1e-5, 1e-3, 1.0, 1e3, 1e6])
def test_float32_copy_passes_at_every_scale(scale: float) -> None:
    ref = _logits(scale)
    r = parity.compare(ref, ref.astype(np.float32))
    assert r["ok"] and r["informative"] and not parity.failed(r), r
    assert r["output_scale"] == pytest.approx(np.abs(ref).max())
    assert r["cosine_similarity"] == pytest.approx(1.0, abs=1e-12)
    assert r["rel_l2_error"] < 1e-6
    json.dumps(r)


@pytest.mark.parametrize("scale", [1e-12, 1e-5, 1e-3, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("kind", ["zeros", "negation", "permuted classes", "single wrong sample"])
def test_wrong_outputs_are_caught_at_every_scale(scale: float, kind: str) -> None:
    ref = _logits(scale)
    r = parity.compare(ref, _wrong_outputs(ref)[kind])
    assert not r["ok"] and parity.failed(r), (kind, scale, r)
    assert r["informative"] and parity.status(r) == "mismatch"


def test_untrained_imagenet_size_outputs_are_compared_on_their_own_scale() -> None:
    # an untrained model: max |y| ~ 1e-5; the old bound 1e-4 x max(1, ...) let zeros pass
    ref = _logits(3e-6, n=16, k=1000)
    assert parity.failed(parity.compare(ref, np.zeros_like(ref)))
    assert parity.failed(parity.compare(ref, ref * (1 + 1e-3)))
    assert parity.compare(ref, ref.astype(np.float32))["ok"]


def test_relative_error_just_over_the_bound_fails_at_huge_scale() -> None:
    ref = _logits(1e6)
    assert parity.compare(ref, ref * (1 + 5e-5))["ok"]
    assert parity.failed(parity.compare(ref, ref * (1 + 2e-4)))


def test_uniform_softmax_head_is_not_informative() -> None:
    probs = _softmax(_logits(1e-6, n=16, k=1000))  # 0.001 everywhere, to ~1e-9
    for out in (probs.astype(np.float32), np.full_like(probs, 1e-3), probs[:, ::-1]):
        r = parity.compare(probs, out)
        assert r["ok"] is False and r["informative"] is False, r
        assert not parity.failed(r) and parity.status(r) == "not informative"
        assert "constant" in r["reason"]
        json.dumps(r)
    # a wrong output is still a failure, not merely uninformative
    r = parity.compare(probs, np.zeros_like(probs))
    assert parity.failed(r) and r["informative"]


def test_output_that_ignores_the_input_is_flagged() -> None:
    row = np.linspace(-1.0, 1.0, 10)
    ref = np.tile(row, (8, 1))  # every input gives the same output
    r = parity.compare(ref, ref.copy())
    assert r["informative"] is False and "every input" in r["reason"]
    assert not r["ok"] and not parity.failed(r)


def test_all_near_ties_leave_only_the_values_to_check() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((8, 1)) * 10
    ref = np.concatenate([base, base + 1e-8, base - 5.0], axis=1)  # top two always tied
    r = parity.compare(ref, ref[:, [1, 0, 2]])
    assert r["argmax_agreement"] == 1.0 and r["argmax_agreement_strict"] == 0.0
    assert r["argmax_informative"] is False
    assert r["ok"] and r["informative"]  # the values vary by input: they are still compared
    assert parity.failed(parity.compare(ref, -ref))
    assert parity.compare(_logits(1.0), _logits(1.0))["argmax_informative"] is True


def test_below_the_smallest_float32_is_flagged() -> None:
    ref = _logits(1e-40)
    r = parity.compare(ref, ref.copy())
    assert r["informative"] is False and "smallest normal float32" in r["reason"]
    r = parity.compare(np.zeros((4, 3)), np.zeros((4, 3)))
    assert r["informative"] is False and r["rel_l2_error"] is None
    assert r["cosine_similarity"] is None
    json.dumps(r)


def test_cosine_and_rel_l2_reported() -> None:
    ref = _logits(1.0)
    r = parity.compare(ref, -ref)
    assert r["cosine_similarity"] == pytest.approx(-1.0)
    assert r["rel_l2_error"] == pytest.approx(2.0)
    r = parity.compare(ref, np.zeros_like(ref))
    assert r["cosine_similarity"] is None and r["rel_l2_error"] == pytest.approx(1.0)


def test_failed_and_status_on_old_and_missing_records() -> None:
    assert parity.failed({"ok": False}) and parity.status({"ok": False}) == "mismatch"
    assert not parity.failed({"ok": True}) and parity.status(None) == "not checked"
    assert not parity.failed(None)
    assert parity.status({"ok": False, "error": "x"}) == "error"
