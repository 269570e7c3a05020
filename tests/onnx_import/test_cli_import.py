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
