"""``dlbench import``: writes the spec, prints the mapping, fails with the list of missing ops."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx_import_helpers import model, node, rand  # noqa: E402

from dlbench.cli import main  # noqa: E402
from dlbench.model.spec import ModelSpec  # noqa: E402


def _save(m, path):
    path.write_bytes(m.SerializeToString())
    return path


def test_import_writes_json_and_npz_and_prints_the_mapping(tmp_path, capsys):
    m = model(
        [
            node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("Relu", ["c"], ["r"]),
            node("GlobalAveragePool", ["r"], ["g"]),
            node("Flatten", ["g"]),
        ],
        (3, 8, 8),
        {"w": rand(4, 3, 3, 3)},
    )
    src = _save(m, tmp_path / "tiny.onnx")
    assert main(["import", str(src), "--out", str(tmp_path / "out" / "tiny_spec")]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    for word in ("Conv", "GlobalAveragePool", "conv2d", "global_avg_pool", "tiny_spec.json"):
        assert word in out
    spec = ModelSpec.load(tmp_path / "out" / "tiny_spec")
    assert spec.name == "tiny" and spec.num_params() == 4 * 3 * 9
    from onnx import numpy_helper

    np.testing.assert_array_equal(spec.params["w"], numpy_helper.to_array(m.graph.initializer[0]))


def test_import_check_compares_with_onnx_runtime(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    m = model(
        [node("MatMul", ["x", "w"], ["h"]), node("Add", ["h", "b"])],
        (6,),
        {"w": rand(6, 4), "b": rand(4)},
    )
    src = _save(m, tmp_path / "lin.onnx")
    assert main(["import", str(src), "--check"]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime" in out and "ok" in out
    assert (tmp_path / "lin.json").is_file() and (tmp_path / "lin.npz").is_file()


def test_import_of_unsupported_ops_exits_1_listing_them(tmp_path, capsys):
    m = model([node("Elu", ["x"], ["a"]), node("Selu", ["a"])], (3,))
    src = _save(m, tmp_path / "bad.onnx")
    assert main(["import", str(src)]) == 1
    err = capsys.readouterr().err
    assert "Elu x1: elu_a" in err and "Selu x1: selu_y" in err
    assert not (tmp_path / "bad.json").exists()


def test_import_of_a_corrupt_file_exits_1(tmp_path, capsys):
    src = tmp_path / "junk.onnx"
    src.write_bytes(b"\xff\xfe not protobuf")
    assert main(["import", str(src)]) == 1
    assert "not a valid ONNX file" in capsys.readouterr().err


# -- a text model (int64 token ids) through `dlbench run` --------------------------------------------


def _ids_file(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    # ids (N, 5) -> rows of an (11, 6) table -> mean over the 5 positions -> 3 scores
    nodes = [
        node("Gather", ["table", "ids"], ["e"]),
        node("ReduceMean", ["e", "axes"], ["m"], keepdims=0),
        node("MatMul", ["m", "w"]),
    ]
    inits = [
        numpy_helper.from_array(rand(11, 6), "table"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(rand(6, 3, seed=2), "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return _save(m, tmp_path / "ids.onnx")


def test_run_of_a_token_model_on_image_data_says_what_to_feed_it(tmp_path, capsys):
    src = _ids_file(tmp_path)
    args = ["run", "--model", str(src), "--dataset", "synthetic", "--backends", "numpy"]
    assert main([*args, "--out", str(tmp_path / "r.json"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "takes integer token ids, shape (5,) per sample (ids in [0, 11))" in err
    assert "--dataset synthetic -D shape=[5] -D vocab_size=11" in err


def test_synthetic_token_ids_are_valid_ids():
    from dlbench import datasets
    from dlbench.errors import ConfigError

    ds = datasets.load("synthetic", shape=(5,), vocab_size=11, num_samples=64)
    x = ds.get_batch(np.arange(64)).inputs
    assert x.dtype == np.int64 and x.min() == 0 and x.max() == 10
    np.testing.assert_array_equal(ds.get_batch([3]).inputs[0], x[3])  # the same sample always
    assert "token ids in [0, 11)" in ds.info.source and ds.info.transform["dtype"] == "int64"
    with pytest.raises(ConfigError, match="Expected `vocab_size` to be a positive int"):
        datasets.load("synthetic", shape=(5,), vocab_size=0)


def test_run_of_a_token_model_on_synthetic_ids_checks_the_original_file(tmp_path):
    import json

    pytest.importorskip("onnxruntime")
    src = _ids_file(tmp_path)
    out = tmp_path / "r.json"
    args = ["run", "--model", str(src), "--dataset", "synthetic", "--backends", "onnxruntime"]
    args += ["-D", "shape=[5]", "-D", "vocab_size=11", "-D", "num_classes=3"]
    args += ["--scenario", "latency", "--min-iters", "3", "--min-time", "0.01", "--max-time", "1"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert "token ids" in doc["dataset"]["source"]
    assert doc["model"]["onnx_original"]["parity"]["ok"]  # ONNX Runtime ran the file on the ids
    assert [c["parity_ok"] for c in doc["cells"]] == [True]


def test_import_check_of_a_token_model_feeds_valid_ids(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    src = _ids_file(tmp_path)
    assert main(["import", str(src), "--check"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "embedding" in out and "argmax agreement 100%: ok" in out
    assert ModelSpec.load(tmp_path / "ids").inputs[0].dtype == "int64"
