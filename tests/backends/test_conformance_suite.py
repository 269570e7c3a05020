"""The shipped conformance check passes a right answer and catches a wrong one, including on
op cases whose reference cannot rank its outputs (parity "not informative")."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.analysis.parity import make_batch
from dlbench.model.backend import get_backend
from dlbench.testing import OP_CASES, BackendConformance


class _Distorted:
    """A backend whose outputs are the float32 reference, transformed."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def build(self, spec, device="cpu"):
        ref = get_backend("numpy").build(spec)
        fn = self.fn
        return type("M", (), {"predict": lambda self, x: fn(ref.predict(x)).astype(np.float32)})()


@pytest.mark.parametrize("case_id", ["dense", "upsample"])
def test_right_answer_passes_wrong_answer_is_caught(case_id: str) -> None:
    case = next(c for c in OP_CASES if c.id == case_id)
    spec = case.spec()
    batch = make_batch(spec.input_shape, 3, seed=1)
    suite = BackendConformance()
    record = suite._check(_Distorted(lambda y: y), spec, batch, f"test:{case_id}")
    assert record["max_abs_diff"] <= record["tolerance"] * record["output_scale"]
    assert record["ok"] and record["informative"]  # the values vary by input: a real check
    # upsample repeats values, so its argmax is all near-ties: flagged, yet the values compared
    assert record.get("argmax_informative", True) is (case_id != "upsample")
    for wrong in (lambda y: -y, lambda y: y + 1e-2 * np.abs(y).max()):
        with pytest.raises(AssertionError):
            suite._check(_Distorted(wrong), spec, batch, f"test:{case_id}")
