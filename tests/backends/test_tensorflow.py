import pytest

pytest.importorskip("tensorflow")

from dlbench.testing import BackendConformance  # noqa: E402


class TestTensorFlowEager(BackendConformance):
    backend_name = "tensorflow"
    backend_options = {"mode": "eager"}


class TestTensorFlowGraph(BackendConformance):
    backend_name = "tensorflow"
    backend_options = {"mode": "graph"}


class TestTensorFlowXla(BackendConformance):
    """XLA compiles per model: ops and small models by default, all models with -m slow."""

    backend_name = "tensorflow"
    backend_options = {"mode": "xla"}
    slow_models = frozenset({"resnet56", "resnet18", "vgg11_bn", "mobilenet_v2", "vit_tiny"})


def test_tf32_disabled_and_layout_recorded() -> None:
    from dlbench import get_backend

    s = get_backend("tensorflow").settings()
    assert s["tf32"] is False and s["layout"] == "NHWC"


_PLACEMENT_SCRIPT = r"""
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import dlbench
from dlbench.backends.tensorflow.backend import SpecModule, TensorFlowModel
out = {}
for mode in ("eager", "graph", "xla"):
    backend = dlbench.get_backend("tensorflow", mode=mode)
    with tf.device("/CPU:1"):
        module = SpecModule(dlbench.zoo.get("lenet5"))
    m = TensorFlowModel(backend, module, "cpu", "/CPU:1")
    x = m.to_device(np.zeros((2, 3, 32, 32), np.float32))
    y = m.forward(x)
    with tf.device("/CPU:0"):  # a caller's scope does not move the model
        y0 = m.forward(x)
    out[mode] = [x.device, y.device, y0.device]
print(json.dumps(out))
"""


def test_inputs_and_outputs_live_on_the_models_device() -> None:
    """Two logical CPUs stand in for two devices: a model built for /CPU:1 takes its inputs
    and returns its outputs there in every mode, whatever scope the caller is in."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _PLACEMENT_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    devices = json.loads(proc.stdout.strip().splitlines()[-1])
    for mode, devs in devices.items():
        assert all(d.endswith("device:CPU:1") for d in devs), (mode, devs)


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_graph_modes_call_one_concrete_function(mode) -> None:
    import numpy as np

    from dlbench import get_backend, zoo

    m = get_backend("tensorflow", mode=mode).build(zoo.get("lenet5"))
    assert m._call is not None
    assert m._call.function_def.attr["_XlaMustCompile"].b is (mode == "xla")
    for n in (1, 5, 1):
        y = m.forward(m.to_device(np.zeros((n, 3, 32, 32), np.float32)))
        assert y.shape == (n, 10) and y.device.endswith("device:CPU:0")
    assert m.fn.experimental_get_tracing_count() == 1  # traced at build, never again
