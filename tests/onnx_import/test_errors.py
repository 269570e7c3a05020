"""Unsupported ops, corrupt and hostile files: every failure is a SpecError that says why."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_import_helpers import model, node, rand  # noqa: E402

from dlbench.errors import DlbenchError, SpecError  # noqa: E402
from dlbench.spec import from_onnx  # noqa: E402


def test_every_unsupported_op_is_listed_with_counts_and_names_before_building():
    nodes = [
        node("Relu", ["x"], ["a"]),
        node("Elu", ["a"], ["b"]),
        node("Selu", ["b"], ["c"]),
        node("Elu", ["c"], ["d"]),
        node("Conv", ["d", "w"]),  # never reached: the check runs before anything is built
    ]
    m = model(nodes, (2, 4, 4), {"w": rand(2, 2, 1, 1)})
    with pytest.raises(SpecError) as info:
        from_onnx(m)
    msg = str(info.value)
    assert "2 op type(s)" in msg
    assert "Elu x2: elu_b, elu_d" in msg
    assert "Selu x1: selu_c" in msg
    assert "Relu" not in msg and "Conv" not in msg


def test_constant_subgraphs_of_any_op_are_folded_not_reported():
    # Range/Cast/ReduceProd have no mapping, but they only compute a constant shape
    nodes = [
        node("Range", ["r0", "r1", "r2"], ["r"]),
        node("ReduceProd", ["r"], ["p"], keepdims=1),
        node("Concat", ["m1", "p"], ["s"], axis=0),
        node("Reshape", ["x", "s"]),
    ]
    inits = {
        "r0": np.array(1, np.int64),
        "r1": np.array(4, np.int64),
        "r2": np.array(1, np.int64),
        "m1": np.array([-1], np.int64),
    }
    spec = from_onnx(model(nodes, (2, 3), inits))
    assert spec.output_shape == (6,)


def test_ops_of_other_domains_are_unsupported():
    fused = helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft", name="fc")
    m = model([fused], (3,), domains={"com.microsoft": 1})
    with pytest.raises(SpecError, match="com.microsoft:FusedConv x1: fc"):
        from_onnx(m)


def test_bad_protobuf(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0fgarbage")
    with pytest.raises(SpecError, match="not a valid ONNX file"):
        from_onnx(p)
    p.write_bytes(b"")
    with pytest.raises(SpecError, match="no graph"):
        from_onnx(p)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        from_onnx(tmp_path / "nope.onnx")
    with pytest.raises(SpecError, match="Expected a path"):
        from_onnx(42)


def _external(tmp_path, location, length=None):
    w = numpy_helper.from_array(rand(3, 3), "w")
    m = model([node("MatMul", ["x", "w"])], (3,), {})
    m.graph.initializer.append(w)
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(length or 36))):
        e = t.external_data.add()
        e.key, e.value = k, v
    (tmp_path / "m").mkdir(exist_ok=True)
    path = tmp_path / "m" / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    path = _external(tmp_path, location)
    with pytest.raises(SpecError, match="external data"):
        from_onnx(path)


def test_external_data_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    path = _external(tmp_path, "link.bin")
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(SpecError, match="outside the model's folder"):
        from_onnx(path)


def test_external_data_inside_the_folder_loads_and_range_is_checked(tmp_path):
    path = _external(tmp_path, "w.bin")
    w = rand(3, 3)
    (path.parent / "w.bin").write_bytes(w.tobytes())
    spec = from_onnx(path)
    np.testing.assert_array_equal(spec.params[next(iter(spec.params))], w.T)
    path = _external(tmp_path, "w.bin", length=10_000)
    with pytest.raises(SpecError, match="outside"):
        from_onnx(path)


def test_external_data_in_a_loaded_proto_needs_the_path(tmp_path):
    path = _external(tmp_path, "w.bin")
    m = onnx.load(str(path), load_external_data=False)
    with pytest.raises(SpecError, match="pass its path"):
        from_onnx(m)


def _raw(name, dims, data):
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, TensorProto.FLOAT, data
    t.dims.extend(dims)
    return t


def test_absurd_shapes():
    m = model([node("Relu", ["x"])], (3,))
    m.graph.initializer.append(_raw("w", [2**20, 2**20], b""))
    with pytest.raises(SpecError, match="elements"):
        from_onnx(m)
    m = model(
        [node("ConstantOfShape", ["s"], ["c"]), node("Add", ["x", "c"])],
        (3,),
        {"s": np.array([2**40, 3], np.int64)},
    )
    with pytest.raises(SpecError, match="elements"):
        from_onnx(m)
    m = model([node("Relu", ["x"])], (2**20, 2**20))
    with pytest.raises(SpecError, match="elements"):
        from_onnx(m)


def test_initializer_whose_data_does_not_match_its_dims():
    m = model([node("MatMul", ["x", "w"])], (3,))
    m.graph.initializer.append(_raw("w", [3, 3], b"\0" * 8))
    with pytest.raises(DlbenchError):
        from_onnx(m)


@pytest.mark.parametrize("opset", [12, 22])
def test_opset_outside_13_to_21(opset):
    m = model([node("Relu", ["x"])], (3,), opset=opset)
    with pytest.raises(SpecError, match="opset 13 to 21"):
        from_onnx(m)


def test_symbolic_axis_needs_input_shape():
    m = model([node("Relu", ["x"])], ("C", 4))
    with pytest.raises(SpecError, match="input_shape"):
        from_onnx(m)
    assert from_onnx(m, input_shape=(5, 4)).input_shape == (5, 4)
    with pytest.raises(SpecError, match="contradicts"):
        from_onnx(m, input_shape=(5, 3))


def test_fixed_batch_is_freed_and_recorded():
    m = model([node("Reshape", ["x", "s"])], (2, 3), {"s": np.array([4, 6], np.int64)}, batch=4)
    spec = from_onnx(m)
    assert spec.inputs[0].shape == (None, 2, 3) and spec.output_shape == (6,)
    assert spec.metadata["onnx_import"]["fixed_batch"] == 4


def test_import_does_not_load_onnx_until_called():
    import subprocess
    import sys

    code = "import dlbench.spec, sys; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "nodes, inits",
    [
        (  # nearest upsampling by a billion in H and W
            [node("Resize", ["x", "", "scales"])],
            {"scales": np.array([1, 1, 1e9, 1e9], np.float32)},
        ),
        (  # 2**40 zeros of padding
            [node("Pad", ["x", "pads"])],
            {"pads": np.array([0, 0, 0, 2**40, 0, 0, 0, 0], np.int64)},
        ),
        (  # an activation broadcast to 2**36 elements per sample
            [node("Expand", ["x", "shape"])],
            {"shape": np.array([1, 2, 2**20, 2**16], np.int64)},
        ),
        (  # an activation tiled 2**40 times
            [node("Tile", ["x", "reps"])],
            {"reps": np.array([1, 1, 2**40, 1], np.int64)},
        ),
    ],
    ids=["resize", "pad", "expand", "tile"],
)
def test_absurd_sizes_built_from_an_activation_fail_before_any_allocation(nodes, inits):
    """Shapes a hostile file derives at import time (not stored in it) are checked too, before
    any array of that size (or a list of copies) is made."""
    name, absurd = next(iter(inits.items()))
    # built with harmless values (the helper runs ONNX's reference evaluator, which would try to
    # allocate the absurd size), then the absurd ones swapped in
    harmless = np.where(absurd > 1, 2, absurd).astype(absurd.dtype)
    m = model(nodes, (2, 1, 1), {name: harmless})
    (init,) = [t for t in m.graph.initializer if t.name == name]
    init.CopyFrom(numpy_helper.from_array(absurd, name))
    with pytest.raises(SpecError, match="elements"):
        from_onnx(m)


def test_truncated_file(tmp_path):
    """A real model cut short (an interrupted download) is a bad protobuf, not a crash."""
    m = model([node("Conv", ["x", "w"])], (2, 4, 4), {"w": rand(3, 2, 3, 3)})
    data = m.SerializeToString()
    p = tmp_path / "cut.onnx"
    for cut in (len(data) // 2, len(data) - 3):
        p.write_bytes(data[:cut])
        with pytest.raises(SpecError):
            from_onnx(p)


def test_graph_that_uses_a_value_before_defining_it():
    """Nodes out of topological order (onnx.checker accepts some such files): a clean error."""
    nodes = [node("Relu", ["a"], ["y"]), node("Sigmoid", ["x"], ["a"])]
    m = model(nodes, (3,))
    with pytest.raises(SpecError, match="not defined before it is used|topologically"):
        from_onnx(m)
