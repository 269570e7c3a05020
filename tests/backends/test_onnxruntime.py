import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from dlbench.testing import BackendConformance  # noqa: E402


class TestOnnxRuntime(BackendConformance):
    backend_name = "onnxruntime"


class TestOnnxRuntimeNoOptimisation(BackendConformance):
    backend_name = "onnxruntime"
    backend_options = {"graph_optimization_level": "disable", "intra_op_threads": 1}


@pytest.mark.parametrize("model_name", ["mlp", "resnet20", "vit_tiny", "lstm"])
def test_generated_graph_passes_checker(model_name: str) -> None:
    import onnx

    from dlbench import zoo
    from dlbench.backends.onnxruntime.ops import OPSET, to_onnx

    proto = to_onnx(zoo.get(model_name))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET


def test_session_settings() -> None:
    from dlbench import get_backend, zoo

    m = get_backend("onnxruntime", intra_op_threads=1).build(zoo.get("mlp"))
    s = m.settings()
    assert s["providers_in_force"] == ["CPUExecutionProvider"]
    assert s["graph_optimization_level"] == "all"
