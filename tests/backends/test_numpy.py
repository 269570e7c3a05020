"""The NumPy reference backend against itself, and its float64 contract."""

import numpy as np

from dlbench import get_backend, zoo
from dlbench.testing import BackendConformance


class TestNumpy(BackendConformance):
    backend_name = "numpy"

    def test_split_calls_match_predict(self, backend) -> None:  # float64 output by design
        spec = zoo.get("lenet5")
        assert (
            get_backend("numpy").build(spec).predict(np.zeros((1, 3, 32, 32), np.float32)).dtype
            == np.float64
        )

    def _check(self, backend, spec, batch, key):
        """The reference cannot be checked against itself: op cases are checked against the
        independent formulas of tests/reference_ops (zoo models are too big for its loops)."""
        out = backend.build(spec).predict(batch)
        assert out.dtype == np.float64
        assert np.isfinite(out).all()
        if spec.metadata.get("task") == "op-test":
            from tests.reference_ops.test_numpy_reference import independent

            want = independent(spec, batch)
            np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12, err_msg=key)
        return {}
