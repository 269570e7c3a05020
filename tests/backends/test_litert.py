"""The LiteRT backend through the backend conformance suite, plus its own contract.

Every TFLite conversion takes about a second, so the 74 op cases and the larger models run
under ``-m slow``; the default selection keeps the contract tests and two small models."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from dlbench import zoo  # noqa: E402
from dlbench.testing import BackendConformance  # noqa: E402

#: zoo models checked in the default selection (the others are marked slow)
FAST_MODELS = frozenset({"mlp", "digits_cnn"})


#: op cases LiteRT's builtin kernels cannot run (the converter needs TensorFlow's Flex delegate,
#: which ai-edge-litert does not ship): the build must say so, naming the op
NOT_IN_LITERT = {"erf": "tf.Erf"}


class TestLiteRT(BackendConformance):
    backend_name = "litert"
    backend_options = {"isolate_converter": False, "intra_op_threads": 1}
    slow_ops = True
    slow_models = frozenset(zoo.names()) - FAST_MODELS

    def test_op(self, backend, op_case) -> None:
        if op_case.id in NOT_IN_LITERT:
            from dlbench.errors import BackendError

            with pytest.raises(
                BackendError, match=f"builtin kernels have no {NOT_IN_LITERT[op_case.id]}"
            ):
                super().test_op(backend, op_case)
            return
        super().test_op(backend, op_case)


def test_builtin_kernels_agree_with_xnnpack() -> None:
    """Without XNNPACK (the builtin kernels) the model computes the same function."""
    from dlbench import get_backend
    from dlbench.analysis.parity import compare

    spec = zoo.get("digits_cnn")
    x = np.random.default_rng(1).random((4, *spec.input_shape), dtype=np.float32)
    ref = get_backend("numpy").build(spec).predict(x)
    for xnnpack in (True, False):
        model = get_backend("litert", isolate_converter=False, xnnpack=xnnpack).build(spec)
        assert model.settings()["delegate"] == ("XNNPACK" if xnnpack else "builtin kernels")
        assert compare(ref, model.predict(x), tolerance=1e-4)["ok"]


@pytest.mark.slow
def test_isolated_conversion_gives_the_same_model() -> None:
    """The converter in a separate process (the default) makes the same flatbuffer, and the
    worker process never imports TensorFlow for it."""
    from dlbench import get_backend

    spec = zoo.get("mlp")
    a = get_backend("litert", isolate_converter=True).build(spec)
    b = get_backend("litert", isolate_converter=False).build(spec)
    assert a.blob == b.blob
    x = np.random.default_rng(0).random((3, *spec.input_shape), dtype=np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_bfloat16_is_unsupported_with_a_reason() -> None:
    from dlbench import get_backend
    from dlbench.execution.precision import UnsupportedPrecision

    with pytest.raises(UnsupportedPrecision, match="no bfloat16 target"):
        get_backend("litert", precision="bfloat16", isolate_converter=False).build(zoo.get("mlp"))


def test_bad_option_is_a_clear_error() -> None:
    from dlbench import get_backend
    from dlbench.errors import ConfigError

    with pytest.raises(ConfigError, match="expected `xnnpack` to be true or false"):
        get_backend("litert", xnnpack="yes")
