"""Models users write or download, exported by their own framework's exporter, then imported."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")


def _agree(spec, x, want, tol=1e-4):
    from dlbench.analysis.parity import compare
    from dlbench.model.backend import get_backend

    got = get_backend("numpy").build(spec).predict(x)
    rec = compare(np.asarray(want), got, tolerance=tol)
    assert rec["ok"] and rec["argmax_agreement"] == 1.0, rec
    return rec


def test_torch_module_exported_with_torch_onnx_export(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from torch import nn

    from dlbench.spec import from_onnx

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Linear(8 * 8 * 8, 32)
            self.norm = nn.LayerNorm(32)
            self.out = nn.Linear(32, 5)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = self.pool(self.pool(x))
            x = torch.flatten(x, 1)
            x = nn.functional.gelu(self.norm(self.head(x)))
            return torch.softmax(self.out(x), dim=-1)

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        net,
        (torch.from_numpy(x),),
        str(path),
        input_names=["x"],
        output_names=["probs"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )
    spec = from_onnx(path)
    assert spec.inputs[0].shape == (None, 3, 16, 16) and spec.outputs == ["probs"]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    _agree(spec, x, want)
    _agree(spec, x[:1], want[:1])
    torch_params = sum(p.numel() for p in net.parameters())
    # the exporter folds the batch norm into the conv (which has a bias): 2 x 8 weights fewer
    assert spec.num_params() == torch_params - 2 * 8


@pytest.mark.slow
def test_keras_mobilenet_v2_via_tf2onnx():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import keras
    import tensorflow as tf
    import tf2onnx

    from dlbench.spec import from_onnx

    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), classifier_activation=None
    )
    sig = (tf.TensorSpec((None, 96, 96, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=15)
    spec = from_onnx(proto, name="keras_mobilenet_v2")
    assert spec.inputs[0].shape == (None, 96, 96, 3)  # the NHWC input stays NHWC
    x = np.random.default_rng(0).standard_normal((2, 96, 96, 3)).astype(np.float32)
    _agree(spec, x, model(x).numpy())
    ops = spec.metadata["onnx_import"]["onnx_ops"]
    assert ops["Conv"] == 52 and ops["Clip"] == 35
