"""ModelSpec: validation naming the node, exact save/load, no code on load, stats, fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dlbench import zoo
from dlbench.errors import SpecError
from dlbench.model.ops import OPS, same_pads
from dlbench.model.spec import ModelSpec, Node, TensorInfo
from dlbench.testing import OP_CASES


def _dense_spec(**node_kw) -> ModelSpec:
    kw = {"name": "fc", "op": "dense", "inputs": ["x"], "params": {"weight": "w"}} | node_kw
    return ModelSpec(
        "tiny",
        [TensorInfo("x", (None, 4))],
        [kw["name"]],
        [Node(**kw)],
        {"w": np.ones((3, 4), np.float32)},
    )


def test_minimal_spec() -> None:
    spec = _dense_spec().validate()
    assert spec.input_shape == (4,)
    assert spec.num_classes == 3
    assert spec.stats() == {"params": 12, "buffers": 0, "macs": 12, "flops": 24}
    assert spec.weight_bytes() == 48


@pytest.mark.parametrize(
    "node_kw, message",
    [
        ({"op": "dense_typo"}, "unknown op 'dense_typo'"),
        ({"attrs": {"units": 3}}, "unknown attribute"),
        ({"params": {"weight": "nope"}}, "'nope' is not in spec.params"),
        ({"params": {}}, "missing parameter"),
        ({"inputs": ["y"]}, "input 'y' is not a graph input"),
        ({"inputs": ["x", "x"]}, "expected 1 input"),
    ],
)
def test_validation_names_the_node(node_kw, message) -> None:
    with pytest.raises(SpecError, match=message) as info:
        _dense_spec(**node_kw).validate()
    assert "'fc'" in str(info.value)


def test_weight_shape_that_does_not_fit() -> None:
    spec = _dense_spec()
    spec.params["w"] = np.ones((3, 5), np.float32)
    with pytest.raises(SpecError, match=r"Node 'fc' \(dense\).*\(out, 4\).*\(3, 5\)"):
        spec.validate()


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"stride": "2"}, "`stride` to be an int or a pair of ints. Received: stride='2'"),
        ({"stride": True}, "`stride`"),
        ({"padding": "full"}, "`padding`"),
        ({"groups": 2.0}, "`groups` to be an int"),
        ({"groups": 2}, "`groups` to divide"),
    ],
)
def test_wrong_attribute_types(attrs, message) -> None:
    spec = ModelSpec(
        "c",
        [TensorInfo("x", (None, 3, 8, 8))],
        ["conv"],
        [Node("conv", "conv2d", ["x"], attrs, {"weight": "w"})],
        {"w": np.ones((4, 3, 3, 3), np.float32)},
    )
    with pytest.raises(SpecError, match="Node 'conv' \\(conv2d\\)") as info:
        spec.validate()
    assert message in str(info.value)


def test_conv_weight_shape_checked() -> None:
    spec = ModelSpec(
        "c",
        [TensorInfo("x", (None, 3, 8, 8))],
        ["conv"],
        [Node("conv", "conv2d", ["x"], {}, {"weight": "w", "bias": "b"})],
        {"w": np.ones((4, 3, 3, 3), np.float32), "b": np.ones(5, np.float32)},
    )
    with pytest.raises(SpecError, match="`bias` to have shape \\(4,\\)"):
        spec.validate()


def test_every_op_has_a_case() -> None:
    assert {c.op for c in OP_CASES} == set(OPS)


def test_same_padding_matches_tensorflow_rule() -> None:
    assert same_pads(9, 3, 2, 1) == (1, 1)
    assert same_pads(8, 3, 2, 1) == (0, 1)
    assert same_pads(5, 4, 1, 1) == (1, 2)


@pytest.mark.parametrize("name", ["mlp", "resnet20", "vit_tiny", "lstm"])
def test_save_load_round_trip_is_exact(tmp_path, name) -> None:
    spec = zoo.get(name)
    jpath, npath = spec.save(tmp_path / "model")
    assert jpath.name == "model.json" and npath.name == "model.npz"
    loaded = ModelSpec.load(tmp_path / "model.json")
    assert loaded == spec
    assert loaded.fingerprint() == spec.fingerprint()
    assert all(loaded.params[k].dtype == np.float32 for k in loaded.params)
    json.loads(jpath.read_text())  # the graph file is plain JSON


class _Evil:
    def __reduce__(self):
        return (exec, ("import builtins; builtins.DLBENCH_PWNED = True",))


def test_loading_never_executes_code(tmp_path) -> None:
    import builtins

    spec = _dense_spec()
    spec.save(tmp_path / "m")
    arr = np.empty(1, dtype=object)
    arr[0] = _Evil()
    np.savez(tmp_path / "m.npz", w=arr)  # an object array can only be stored by pickling
    with pytest.raises(SpecError, match="not plain numeric arrays"):
        ModelSpec.load(tmp_path / "m")
    assert not hasattr(builtins, "DLBENCH_PWNED")


def test_load_rejects_mismatched_weights(tmp_path) -> None:
    spec = _dense_spec()
    spec.save(tmp_path / "m")
    np.savez(tmp_path / "m.npz", w=np.ones((3, 4), np.float64))
    with pytest.raises(SpecError, match="weights file has float64"):
        ModelSpec.load(tmp_path / "m")
    (tmp_path / "m.json").write_text('{"format": "something else"}')
    with pytest.raises(SpecError, match="not a dlbench model spec"):
        ModelSpec.load(tmp_path / "m")


def test_fingerprint_tracks_graph_and_weights() -> None:
    a, b = zoo.get("mlp"), zoo.get("mlp")
    assert a.fingerprint() == b.fingerprint()
    b.params["fc1.weight"] = b.params["fc1.weight"].copy()
    b.params["fc1.weight"][0, 0] += 1e-6
    assert a.fingerprint() != b.fingerprint()
    c = zoo.get("mlp")
    c.metadata["note"] = "metadata does not change the function"
    assert c.fingerprint() == a.fingerprint()
    assert zoo.get("mlp", seed=1).fingerprint() != a.fingerprint()


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, dlbench, dlbench.model.spec, dlbench.model.zoo, dlbench.analysis.parity, dlbench.model.ops\n"
        "from dlbench import zoo\n"
        "zoo.get('resnet20').stats(); zoo.describe()\n"
        "import dlbench.backends, dlbench.backends.torch, dlbench.backends.tensorflow\n"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'onnxruntime', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- hostile spec files


def _saved(tmp_path):
    spec = _dense_spec()
    return spec.save(tmp_path / "m")


def _npy_member(header_shape: tuple[int, ...], data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": header_shape}
    )
    return buf.getvalue() + data


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("truncate", "truncated, corrupt or not plain numeric arrays"),
        ("not-zip", "truncated, corrupt or not plain numeric arrays"),
        ("text-member", "member 'notes.txt' is not an array"),
        ("absurd-shape", r"declares shape \(1099511627776, 4\).*holds 48 bytes"),
        ("short-data", r"declares shape \(3, 4\).*holds 8 bytes"),
    ],
)
def test_hostile_weights_files_are_spec_errors(tmp_path, damage: str, match: str) -> None:
    import zipfile

    _, npath = _saved(tmp_path)
    raw = npath.read_bytes()
    if damage == "truncate":
        npath.write_bytes(raw[: len(raw) // 2])
    elif damage == "not-zip":
        npath.write_bytes(b"\x93NUMPY junk")
    else:
        with zipfile.ZipFile(npath, "w") as zf:
            if damage == "text-member":
                zf.writestr("w.npy", _npy_member((3, 4), b"\0" * 48))
                zf.writestr("notes.txt", b"hello")
            elif damage == "absurd-shape":
                zf.writestr("w.npy", _npy_member((1 << 40, 4), b"\0" * 48))
            else:
                zf.writestr("w.npy", _npy_member((3, 4), b"\0" * 8))
    with pytest.raises(SpecError, match=match):
        ModelSpec.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ([["w", [3, 4]]], "expected 'params' to be an object"),
        ({"w": [3, 4]}, r"expected params\['w'\] to be"),
        ({"w": {"shape": [3, 4]}}, r"expected params\['w'\] to be"),
        ({"w": {"shape": ["3", 4], "dtype": "float32"}}, r"Received: \{'shape': \['3', 4\]"),
        ({"w": {"shape": [-3, 4], "dtype": "float32"}}, "non-negative ints"),
    ],
)
def test_malformed_params_section_is_a_spec_error(tmp_path, params, match: str) -> None:
    jpath, _ = _saved(tmp_path)
    doc = json.loads(jpath.read_text())
    doc["params"] = params
    jpath.write_text(json.dumps(doc))
    with pytest.raises(SpecError, match=match):
        ModelSpec.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("inputs", [{"name": "x", "shape": [None, "four"]}]),
        ("inputs", ["x"]),
        ("nodes", [{"name": "fc", "op": "dense", "inputs": [["x"]]}]),
        ("nodes", "fc"),
        ("outputs", None),
    ],
)
def test_malformed_graph_is_a_spec_error(tmp_path, key: str, value) -> None:
    jpath, _ = _saved(tmp_path)
    doc = json.loads(jpath.read_text())
    doc[key] = value
    jpath.write_text(json.dumps(doc))
    with pytest.raises(SpecError):
        ModelSpec.load(tmp_path / "m")
    jpath.write_text(json.dumps(doc)[:-20])
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.load(tmp_path / "m")


def test_spec_must_fit_the_dataset() -> None:
    from dlbench import datasets
    from dlbench.model.spec import check_fits_dataset

    info = datasets.load("digits").info
    check_fits_dataset(zoo.get("mlp", input_shape=(1, 8, 8)), info)
    with pytest.raises(SpecError, match=r"dataset 'digits' \(1, 8, 8\).*takes \(3, 32, 32\)"):
        check_fits_dataset(zoo.get("mlp", input_shape=(3, 32, 32)), info)
    with pytest.raises(SpecError, match="at least the 10 classes"):
        check_fits_dataset(zoo.get("mlp", input_shape=(1, 8, 8), num_classes=5), info)
