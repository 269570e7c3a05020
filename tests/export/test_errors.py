"""Clear errors: an unsupported op, an output that is not a tensor, an ONNX file that does not
exist or is not a valid model, a shape mismatch between model and data, parity out of
tolerance, and bad options."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import need, need_modules

import dlbench
from dlbench.errors import BackendError, ConfigError, DlbenchError
from dlbench.export import (
    ExportError,
    ExportParityError,
    OnnxFileError,
    UnsupportedOpError,
    summarize,
    to_onnx,
)

# -- unsupported ops --------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_torch_unsupported_op(tmp_path, exporter):
    need("torch", exporter)
    import torch

    class Digamma(torch.nn.Module):
        def forward(self, x):
            return torch.special.digamma(x.flatten(1))

    with pytest.raises(UnsupportedOpError, match="digamma") as info:
        to_onnx(Digamma(), tmp_path / "d.onnx", input_shape=(4,), exporter=exporter)
    assert isinstance(info.value, DlbenchError)


def test_tensorflow_unsupported_op(tmp_path):
    need("tensorflow")
    import tensorflow as tf

    class Igamma(tf.Module):
        def __call__(self, x):
            return tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0)

    with pytest.raises(UnsupportedOpError, match="Igamma"):
        to_onnx(Igamma(), tmp_path / "i.onnx", source="tensorflow", input_shape=(4,))


def test_jax_unsupported_op(tmp_path):
    need("jax")
    import jax

    def fn(params, x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    with pytest.raises(UnsupportedOpError, match="pure_callback"):
        to_onnx(fn, tmp_path / "c.onnx", source="jax", params={}, input_shape=(4,))


# -- outputs that are not tensors -------------------------------------------------------------


def test_torch_output_not_a_tensor():
    need_modules("torch")
    import torch

    class Dict(torch.nn.Module):
        def forward(self, x):
            return {"logits": x}

    with pytest.raises(BackendError, match="return a torch.Tensor.*dict with keys"):
        dlbench.get_backend("torch").wrap(Dict(), input_shape=(3,))
    model = dlbench.get_backend("torch").wrap(Dict())  # no probe without input_shape...
    with pytest.raises(BackendError, match="Received: dict"):  # ...but predict says so
        model.predict(np.zeros((2, 3), np.float32))


def test_jax_output_not_a_tensor():
    need_modules("jax")
    with pytest.raises(BackendError, match="JAX array.*Received: dict with keys"):
        dlbench.get_backend("jax").wrap(lambda p, x: {"logits": x}, {}, input_shape=(3,))


def test_keras_output_not_a_tensor():
    need_modules("tensorflow")
    import tensorflow as tf

    class Text(tf.Module):
        def __call__(self, x):
            return {"a": x}

    with pytest.raises(BackendError, match="tf.Tensor.*dict"):
        dlbench.get_backend("tensorflow", mode="eager").wrap(Text(), input_shape=(3,))


def test_onnx_output_not_a_tensor(tmp_path):
    need_modules("onnx", "onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    node = helper.make_node("SequenceConstruct", ["x"], ["s"])
    proto = helper.make_model(
        helper.make_graph([node], "g", [x], [seq]), opset_imports=[helper.make_opsetid("", 18)]
    )
    onnx.save(proto, tmp_path / "seq.onnx")
    with pytest.raises(BackendError, match="first output 's' to be a tensor"):
        dlbench.get_backend("onnxruntime").wrap(tmp_path / "seq.onnx")


def test_not_a_model():
    need_modules("torch")
    with pytest.raises(BackendError, match="Expected a torch.nn.Module. Received: int"):
        dlbench.get_backend("torch").wrap(3)


# -- ONNX files that do not exist or are not valid ----------------------------------------------


def test_onnx_file_missing(tmp_path):
    need_modules("onnx", "onnxruntime")
    with pytest.raises(OnnxFileError, match="ONNX file not found: .*nope.onnx"):
        dlbench.get_backend("onnxruntime").wrap(tmp_path / "nope.onnx")
    with pytest.raises(OnnxFileError, match="not found"):
        summarize(tmp_path / "nope.onnx")


def test_onnx_file_not_onnx(tmp_path):
    need_modules("onnx", "onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(OnnxFileError, match="is not an ONNX model"):
        dlbench.get_backend("onnxruntime").wrap(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxFileError, match="is not an ONNX model"):
        dlbench.get_backend("onnxruntime").wrap(empty)
    with pytest.raises(OnnxFileError, match="directory"):
        dlbench.get_backend("onnxruntime").wrap(tmp_path)


def test_onnx_file_invalid_model(tmp_path):
    need_modules("onnx", "onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    node = helper.make_node("NoSuchOp", ["x"], ["y"])
    proto = helper.make_model(
        helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)]
    )
    onnx.save(proto, tmp_path / "invalid.onnx")
    with pytest.raises(OnnxFileError, match="not a valid ONNX model: onnx.checker says.*NoSuchOp"):
        dlbench.get_backend("onnxruntime").wrap(tmp_path / "invalid.onnx")


# -- shape mismatch between model and data ----------------------------------------------------


def test_torch_shape_mismatch():
    need_modules("torch")
    import torch

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(BackendError, match=r"fails on inputs of shape \(2, 3, 32, 32\)"):
        dlbench.get_backend("torch").wrap(net, input_shape=(3, 32, 32))
    model = dlbench.get_backend("torch").wrap(net, input_shape=(1, 8, 8))
    with pytest.raises(BackendError, match=r"per-sample shape \(1, 8, 8\).*\(4, 3, 32, 32\)"):
        model.predict(np.zeros((4, 3, 32, 32), np.float32))


def test_keras_shape_mismatch():
    need_modules("tensorflow")
    import keras

    net = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(BackendError, match=r"takes inputs of per-sample shape \(28, 28, 1\)"):
        dlbench.get_backend("tensorflow").wrap(net, input_shape=(3, 32, 32))
    model = dlbench.get_backend("tensorflow").wrap(net)
    assert model.input_shape == (1, 28, 28)
    digits = dlbench.data.load("digits", split="test")
    with pytest.raises(BackendError, match=r"per-sample shape \(1, 28, 28\).*\(1, 8, 8\)"):
        model.predict(digits.get_batch(range(2)).inputs)


def test_jax_shape_mismatch():
    need_modules("jax")
    import jax.numpy as jnp

    def fn(w, x):
        return x.reshape(x.shape[0], -1) @ w

    with pytest.raises(BackendError, match="fails on inputs of shape"):
        dlbench.get_backend("jax").wrap(fn, jnp.ones((64, 2)), input_shape=(3, 8, 8))


def test_onnx_shape_mismatch(tmp_path):
    need("torch")
    report = to_onnx(dlbench.zoo.get("mlp"), tmp_path / "m.onnx")
    ort = dlbench.get_backend("onnxruntime")
    with pytest.raises(BackendError, match=r"per-sample shape \(1, 8, 8\). Received: input_shape"):
        ort.wrap(report.path, input_shape=(3, 32, 32))
    model = ort.wrap(report.path)
    with pytest.raises(BackendError, match="wrapped for inputs of per-sample shape"):
        model.predict(np.zeros((2, 3, 32, 32), np.float32))
    static = to_onnx(dlbench.zoo.get("mlp"), tmp_path / "s.onnx", dynamic_batch=False, batch_size=2)
    with pytest.raises(BackendError, match="batches of exactly 2"):
        ort.wrap(static.path).predict(np.zeros((5, 1, 8, 8), np.float32))


def test_bad_input_shape_value():
    need_modules("torch")
    import torch

    with pytest.raises(ConfigError, match="Expected `input_shape`"):
        dlbench.get_backend("torch").wrap(torch.nn.Identity(), input_shape=(3, -1))


# -- parity and options ------------------------------------------------------------------------


def test_parity_out_of_tolerance_is_an_error_unless_forced(tmp_path):
    need("torch")
    spec = dlbench.zoo.get("resnet20")
    with pytest.raises(ExportParityError, match="differ from torch's.*force=True") as info:
        to_onnx(spec, tmp_path / "r.onnx", tolerance=1e-15)
    assert info.value.report is not None and not info.value.report.ok
    assert (tmp_path / "r.onnx").exists()
    report = to_onnx(spec, tmp_path / "r2.onnx", tolerance=1e-15, force=True)
    assert report.parity["ok"] is False and report.parity["max_abs_diff"] > 0


def test_export_needs_an_input_shape(tmp_path):
    need("torch")
    import torch

    with pytest.raises(ExportError, match="input shape is unknown. Pass input_shape"):
        to_onnx(torch.nn.Identity(), tmp_path / "i.onnx")


def test_bad_options(tmp_path):
    need("torch")
    spec = dlbench.zoo.get("mlp")
    with pytest.raises(ConfigError, match="exporter for torch among"):
        to_onnx(spec, tmp_path / "x.onnx", exporter="tf2onnx")
    with pytest.raises(ConfigError, match="source to be one of"):
        to_onnx(spec, tmp_path / "x.onnx", source="mxnet")
    with pytest.raises(ConfigError, match="opset"):
        to_onnx(spec, tmp_path / "x.onnx", opset="18")
    with pytest.raises(ConfigError, match="Cannot tell which framework"):
        to_onnx(object(), tmp_path / "x.onnx")


def test_opset_limits(tmp_path):
    spec = dlbench.zoo.get("mlp")
    if "tensorflow" not in dlbench.available_backends():
        pytest.skip("needs tensorflow")
    need("tensorflow")
    with pytest.raises(ExportError, match="up to 18. Received: opset=20"):
        to_onnx(spec, tmp_path / "t.onnx", source="tensorflow", opset=20)
    need("jax")
    with pytest.raises(ExportError, match="opset 18 or later"):
        to_onnx(spec, tmp_path / "j.onnx", source="jax", opset=17)


def test_model_of_another_backend(tmp_path):
    need("torch")
    need_modules("onnxruntime")
    model = dlbench.get_backend("numpy").build(dlbench.zoo.get("mlp"))
    with pytest.raises(ConfigError, match="Expected a torch model for source='torch'"):
        to_onnx(model, tmp_path / "x.onnx", source="torch")


# -- issue 21: captured constants, exporter failures that name the exporter and layer, no
# -- half-written files, jax2onnx failures that are not missing ops ---------------------------


def _keras_with_normalization():
    import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0])(inp)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def _no_leftovers(folder, name):
    assert not (folder / name).exists()
    assert not [p.name for p in folder.iterdir() if "partial" in p.name]


def test_keras_normalization_layer_exports_as_one_input_graph(tmp_path):
    need("tensorflow")
    import onnx

    report = to_onnx(
        _keras_with_normalization(),
        tmp_path / "norm.onnx",
        source="tensorflow",
        input_shape=(3, 8, 8),
        layout="NHWC",
    )
    assert report.ok and report.input_names == ["input"]
    proto = onnx.load(str(tmp_path / "norm.onnx"))
    init = {t.name for t in proto.graph.initializer}
    assert [i.name for i in proto.graph.input if i.name not in init] == ["input"]
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.slow
def test_keras_efficientnet_b0_exports(tmp_path):
    need("tensorflow")
    import keras

    model = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
    report = to_onnx(
        model, tmp_path / "eff.onnx", source="tensorflow", input_shape=(3, 64, 64), layout="NHWC"
    )
    assert report.input_names == ["input"] and not dlbench.analysis.parity.failed(report.parity)


def test_tf2onnx_failure_names_the_exporter_and_the_layer(tmp_path, monkeypatch):
    need("tensorflow")
    import tf2onnx

    def boom(*args, **kwargs):
        raise ValueError("could not convert node functional_1/dense_7/MatMul: shape mismatch")

    monkeypatch.setattr(tf2onnx.convert, "from_graph_def", boom)
    with pytest.raises(
        ExportError,
        match=r"tf2onnx .*node 'functional_1/dense_7/MatMul' "
        r"\(layer 'dense_7'\)",
    ) as info:
        to_onnx(
            _keras_with_normalization(),
            tmp_path / "x.onnx",
            source="tensorflow",
            input_shape=(3, 8, 8),
            layout="NHWC",
        )
    assert not isinstance(info.value, UnsupportedOpError)
    _no_leftovers(tmp_path, "x.onnx")


def test_a_graph_with_extra_inputs_names_the_exporter_and_the_layers():
    need_modules("onnx")
    from onnx import TensorProto, helper

    from dlbench.export.core import _raise_if_extra_inputs

    vals = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 3])
        for n in (
            "input",
            "functional_1/normalization_1/Sub/y:0",
            "functional_1/normalization_1/Sqrt/x:0",
        )
    ]
    node = helper.make_node("Sum", [v.name for v in vals], ["out"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])
    proto = helper.make_model(helper.make_graph([node], "g", vals, [out]))
    with pytest.raises(ExportError, match=r"tf2onnx.*3 graph inputs.*\['normalization_1'\]"):
        _raise_if_extra_inputs(proto, "tensorflow", "tf2onnx")


def test_a_failed_check_leaves_no_file_behind(tmp_path, monkeypatch):
    need("tensorflow")
    from dlbench.export import graph

    def corrupt(path):
        assert "partial" in str(path)  # checked before it is moved into place
        raise OnnxFileError("injected: not a valid model")

    monkeypatch.setattr(graph, "load_onnx", corrupt)
    with pytest.raises(ExportError, match="not a valid ONNX model"):
        to_onnx(dlbench.zoo.get("mlp"), tmp_path / "m.onnx", source="tensorflow")
    _no_leftovers(tmp_path, "m.onnx")


def test_jax2onnx_failure_is_an_exporter_error_not_an_unsupported_op(tmp_path, monkeypatch):
    need("jax")
    import jax2onnx

    def boom(*args, **kwargs):
        raise TypeError("error while converting primitive 'dot_general': bad broadcast")

    monkeypatch.setattr(jax2onnx, "to_onnx", boom)
    with pytest.raises(
        ExportError, match=r"jax2onnx .*primitive dot_general.*exporter error"
    ) as info:
        to_onnx(
            lambda p, x: x @ p["w"],
            tmp_path / "j.onnx",
            source="jax",
            params={"w": np.ones((4, 2), np.float32)},
            input_shape=(4,),
        )
    assert not isinstance(info.value, UnsupportedOpError)
    _no_leftovers(tmp_path, "j.onnx")


def test_export_parity_merges_batches_without_hiding_a_failure():
    from dlbench.analysis.parity import failed
    from dlbench.export.core import _parity

    class Same:  # three equal columns: a batch of 1 alone is a constant output
        def __init__(self, sign=1.0):
            self.sign = sign

        def predict(self, x):
            m = x.reshape(len(x), -1).mean(axis=1, keepdims=True)
            return np.repeat(m, 3, axis=1) * self.sign

    rec = _parity(Same(), Same(), (4,), [8, 1], 1e-4)
    assert rec["ok"] and rec["informative"] and rec["batch_sizes"] == [8, 1]
    only_one = _parity(Same(), Same(), (4,), [1], 1e-4)
    assert not only_one["ok"] and only_one["informative"] is False and not failed(only_one)
    wrong = _parity(Same(), Same(-1.0), (4,), [8, 1], 1e-4)
    assert failed(wrong) and not wrong["ok"]
