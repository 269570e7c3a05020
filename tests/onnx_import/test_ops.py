"""Each mapped ONNX op, in a small hand-written graph, against ONNX's own reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx_import_helpers import check, model, node, rand  # noqa: E402

from dlbench.errors import SpecError  # noqa: E402


@pytest.mark.parametrize(
    "attrs",
    [
        {"pads": [1, 1, 1, 1]},
        {"pads": [0, 1, 2, 1], "strides": [2, 1]},  # asymmetric (t, l, b, r)
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
        {"auto_pad": "VALID", "dilations": [2, 2]},
    ],
)
def test_conv_padding_forms(attrs):
    m = model(
        [node("Conv", ["x", "w", "b"], **attrs)], (4, 9, 8), {"w": rand(6, 4, 3, 3), "b": rand(6)}
    )
    spec = check(m, (4, 9, 8))
    assert [n.op for n in spec.nodes] == ["conv2d"]
    # the initializers become the weights, unchanged (ONNX is already OIHW)
    assert spec.num_params() == 6 * 4 * 9 + 6


def test_grouped_conv_batch_norm_relu6():
    nodes = [
        node("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
        node("Clip", ["n", "lo", "hi"]),
    ]
    inits = {
        "w": rand(8, 1, 3, 3),
        "s": rand(8) + 2,
        "bb": rand(8),
        "m": rand(8),
        "v": np.abs(rand(8)) + 0.5,
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
    }
    spec = check(model(nodes, (4, 6, 6), inits), (4, 6, 6))
    assert [n.op for n in spec.nodes] == ["conv2d", "batch_norm", "relu6"]
    assert spec.nodes[1].attrs["eps"] == pytest.approx(1e-3)


@pytest.mark.parametrize("trans_b,alpha,beta,c_shape", [(1, 1.0, 1.0, (5,)), (0, 0.5, 2.0, (1, 5))])
def test_gemm(trans_b, alpha, beta, c_shape):
    w = rand(5, 7) if trans_b else rand(7, 5)
    nodes = [node("Gemm", ["x", "w", "c"], transB=trans_b, alpha=alpha, beta=beta)]
    spec = check(model(nodes, (7,), {"w": w, "c": rand(*c_shape)}), (7,))
    assert spec.nodes[0].op == "dense" and spec.num_params() == 5 * 7 + 5


def test_matmul_add_becomes_one_dense_with_bias():
    nodes = [node("MatMul", ["x", "w"], ["h"]), node("Add", ["h", "b"])]
    spec = check(model(nodes, (4, 6), {"w": rand(6, 3), "b": rand(3)}), (4, 6))
    assert [n.op for n in spec.nodes] == ["dense"] and set(spec.nodes[0].params) == {
        "weight",
        "bias",
    }
    assert spec.num_params() == 6 * 3 + 3


def test_arithmetic_with_constants_and_activations():
    nodes = [
        node("Sub", ["x", "c"], ["a"]),
        node("Div", ["a", "d"], ["b"]),
        node("Sub", ["c", "b"], ["e"]),
        node("Mul", ["e", "x"], ["f"]),
        node("Sub", ["f", "x"], ["g"]),
        node("Sigmoid", ["g"], ["h"]),
        node("Tanh", ["h"], ["i"]),
        node("HardSwish", ["i"]),
    ]
    inits = {"c": rand(1, 5), "d": np.array(2.5, np.float32)}
    check(model(nodes, (3, 5), inits), (3, 5))


def test_constant_that_varies_along_the_batch_axis_is_an_error():
    m = model([node("Add", ["x", "c"])], (5,), {"c": rand(2, 5)})
    with pytest.raises(SpecError, match="batch axis"):
        check(m, (5,))


@pytest.mark.parametrize(
    "op,attrs",
    [
        ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
        ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ],
)
def test_pools(op, attrs):
    check(model([node(op, ["x"], **attrs)], (3, 7, 7)), (3, 7, 7))


def test_asymmetric_pool_padding_is_a_clear_error():
    m = model([node("MaxPool", ["x"], kernel_shape=[2, 2], pads=[0, 0, 1, 1])], (3, 7, 7))
    with pytest.raises(SpecError, match="symmetric padding"):
        check(m, (3, 7, 7))


def test_global_pool_flatten_softmax():
    nodes = [
        node("GlobalAveragePool", ["x"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Softmax", ["f"], axis=1),
    ]
    check(model(nodes, (4, 5, 5)), (4, 5, 5))


@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_mean_axes_attribute_or_input(opset):
    if opset >= 18:
        nodes = [node("ReduceMean", ["x", "ax"], keepdims=0)]
        inits = {"ax": np.array([2, 3], np.int64)}
    else:
        nodes = [node("ReduceMean", ["x"], axes=[2, 3], keepdims=0)]
        inits = {}
    spec = check(model(nodes, (4, 5, 6), inits, opset=opset), (4, 5, 6))
    assert spec.output_shape == (4,)


def test_reduce_over_the_batch_axis_is_an_error():
    m = model([node("ReduceMean", ["x", "ax"])], (4,), {"ax": np.array([0], np.int64)})
    with pytest.raises(SpecError, match="batch axis"):
        check(m, (4,))


def test_traced_shape_chain_is_folded():
    """x.view(x.size(0), -1) as exporters trace it: Shape -> Gather -> Unsqueeze -> Concat."""
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "zero"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes0"], ["n1"]),
        node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"]),
    ]
    inits = {
        "zero": np.array(0, np.int64),
        "axes0": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    spec = check(model(nodes, (2, 3, 4), inits), (2, 3, 4))
    assert [n.op for n in spec.nodes] == ["reshape"]
    assert spec.metadata["onnx_import"]["folded_nodes"] == 4


def test_batch_axis_moves_and_comes_back():
    """Transpose the batch axis inward (as sequence-first attention does), work, transpose back."""
    nodes = [
        node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),  # (T, N, D)
        node("MatMul", ["t", "w"], ["h"]),
        node("Reshape", ["h", "shape"], ["r"]),  # (T, N, 2, 3): batch at axis 1
        node("Softmax", ["r"], ["s"], axis=-1),
        node("Transpose", ["s"], ["u"], perm=[1, 0, 2, 3]),
        node("Reshape", ["u", "flat"]),
    ]
    inits = {
        "w": rand(4, 6),
        "shape": np.array([5, -1, 2, 3], np.int64),
        "flat": np.array([0, -1], np.int64),
    }
    check(model(nodes, (5, 4), inits), (5, 4))


def test_an_output_with_the_batch_axis_merged_is_a_clear_error():
    m = model([node("Reshape", ["x", "s"])], (2, 3), {"s": np.array([-1, 3], np.int64)})
    with pytest.raises(SpecError, match="merged"):
        check(m, (2, 3))


def test_batch_merged_with_time_then_split_again():
    """(N, T, D) -> (N*T, D) -> Gemm -> (N, T, E): how tf2onnx writes a time-distributed dense."""
    nodes = [
        node("Reshape", ["x", "flat"], ["f"]),
        node("Gemm", ["f", "w", "b"], ["g"], transB=1),
        node("Relu", ["g"], ["r"]),
        node("Reshape", ["r", "back"]),
    ]
    inits = {
        "flat": np.array([-1, 4], np.int64),
        "w": rand(6, 4),
        "b": rand(6),
        "back": np.array([-1, 5, 6], np.int64),
    }
    spec = check(model(nodes, (5, 4), inits), (5, 4))
    assert [n.op for n in spec.nodes] == ["dense", "relu"]  # no data moves: the reshapes vanish


def test_sequence_first_attention_heads_merge_with_the_batch():
    """torch's MHA: (T, N, D) -> (T, N*H, d) -> (N*H, T, d) -> scores -> (N, H, T, T) -> back."""
    t, heads, d = 4, 2, 3
    nodes = [
        node("Transpose", ["x"], ["tx"], perm=[1, 0, 2]),  # (T, N, H*d)
        node("Reshape", ["tx", "s1"], ["h"]),  # (T, N*H, d): heads merged after the batch
        node("Transpose", ["h"], ["ht"], perm=[1, 0, 2]),  # (N*H, T, d)
        node("Transpose", ["ht"], ["hk"], perm=[0, 2, 1]),  # (N*H, d, T)
        node("MatMul", ["ht", "hk"], ["sc"]),  # (N*H, T, T)
        node("Softmax", ["sc"], ["p"], axis=-1),
        node("MatMul", ["p", "ht"], ["o"]),  # (N*H, T, d)
        node("Reshape", ["o", "s2"], ["o4"]),  # (N, H, T, d)
        node("Transpose", ["o4"], ["o5"], perm=[2, 0, 1, 3]),  # (T, N, H, d)
        node("Reshape", ["o5", "s3"], ["o6"]),  # (T*N, H*d): the batch merged after T
        node("Gemm", ["o6", "w"], ["o7"], transB=1),
        node("Reshape", ["o7", "s4"], ["o8"]),  # (T, N, D)
        node("Transpose", ["o8"], perm=[1, 0, 2]),
    ]
    inits = {
        "s1": np.array([t, -1, d], np.int64),
        "s2": np.array([-1, heads, t, d], np.int64),
        "s3": np.array([-1, heads * d], np.int64),
        "w": rand(heads * d, heads * d),
        "s4": np.array([t, -1, heads * d], np.int64),
    }
    check(model(nodes, (t, heads * d), inits), (t, heads * d))


def test_one_weight_used_by_many_nodes_is_imported_once():
    nodes = [
        node("MatMul", ["x", "w"], ["a"]),
        node("MatMul", ["a", "w"], ["b"]),
        node("Relu", ["b"]),
    ]
    spec = check(model(nodes, (4,), {"w": rand(4, 4)}), (4,))
    assert len(spec.params) == 1 and spec.num_params() == 16


def test_squeeze_unsqueeze_concat_slice_split_gather_pad():
    nodes = [
        node("Unsqueeze", ["x", "a1"], ["u"]),  # (N, 1, 4, 6)
        node("Squeeze", ["u", "a1"], ["q"]),  # (N, 4, 6)
        node("Concat", ["q", "x"], ["c"], axis=2),  # (N, 4, 12)
        node("Slice", ["c", "st", "en", "ax", "sp"], ["sl"]),  # (N, 4, 6)
        node("Split", ["sl", "sizes"], ["p0", "p1"], axis=1),  # (N, 1, 6), (N, 3, 6)
        node("Gather", ["p1", "idx"], ["g"], axis=1),  # (N, 6)
        node("Gather", ["p0", "idx0"], ["g0"], axis=1),  # (N, 6)
        node("Add", ["g", "g0"], ["s"]),
        node("Pad", ["s", "pads", "val"]),
    ]
    inits = {
        "a1": np.array([1], np.int64),
        "st": np.array([1], np.int64),
        "en": np.array([2**63 - 1], np.int64),
        "ax": np.array([-1], np.int64),
        "sp": np.array([2], np.int64),
        "sizes": np.array([1, 3], np.int64),
        "idx": np.array(-1, np.int64),
        "idx0": np.array(0, np.int64),
        "pads": np.array([0, 1, 0, 2], np.int64),
        "val": np.array(0.5, np.float32),
    }
    spec = check(model(nodes, (4, 6), inits), (4, 6))
    assert spec.output_shape == (9,)


@pytest.mark.parametrize("ct,nm", [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor")])
@pytest.mark.parametrize("by", ["scales", "sizes"])
def test_resize_nearest(ct, nm, by):
    if by == "scales":
        nodes = [
            node(
                "Resize",
                ["x", "", "sc"],
                mode="nearest",
                coordinate_transformation_mode=ct,
                nearest_mode=nm,
            )
        ]
        inits = {"sc": np.array([1, 1, 2, 3], np.float32)}
    else:
        nodes = [
            node(
                "Resize",
                ["x", "", "", "sz"],
                mode="nearest",
                coordinate_transformation_mode=ct,
                nearest_mode=nm,
            )
        ]
        inits = {"sz": np.array([3, 2, 8, 15], np.int64)}
    spec = check(model(nodes, (2, 4, 5), inits, batch=3), (2, 4, 5))
    assert spec.nodes[0].op == "upsample" and spec.nodes[0].attrs["scale_factor"] == [2, 3]


def test_resize_linear_is_a_clear_error():
    nodes = [node("Resize", ["x", "", "sc"], mode="linear")]
    m = model(nodes, (2, 4, 5), {"sc": np.array([1, 1, 2, 2], np.float32)})
    with pytest.raises(SpecError, match="nearest"):
        check(m, (2, 4, 5))


def test_layer_norm_and_gelu():
    nodes = [
        node("LayerNormalization", ["x", "s", "b"], ["l"], epsilon=1e-6),
        node("Gelu", ["l"], approximate="tanh"),
    ]
    spec = check(model(nodes, (3, 8), {"s": rand(8), "b": rand(8)}, opset=20), (3, 8))
    assert [n.op for n in spec.nodes] == ["layer_norm", "gelu"]


@pytest.mark.parametrize("variant", ["x*(1+erf)*0.5", "0.5*(1+erf)*x", "(x*0.5)*(1+erf)"])
def test_erf_gelu_patterns_fuse(variant):
    nodes = [
        node("Div", ["x", "sqrt2"], ["d"]),
        node("Erf", ["d"], ["e"]),
        node("Add", ["e", "one"], ["a"]),
    ]
    if variant == "x*(1+erf)*0.5":
        nodes += [node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"])]
    elif variant == "0.5*(1+erf)*x":
        nodes += [node("Mul", ["half", "a"], ["m"]), node("Mul", ["x", "m"])]
    else:
        nodes += [node("Mul", ["x", "half"], ["h"]), node("Mul", ["h", "a"])]
    inits = {
        k: np.array(v, np.float32) for k, v in (("sqrt2", 2**0.5), ("one", 1.0), ("half", 0.5))
    }
    spec = check(model(nodes, (6,), inits), (6,))
    assert [n.op for n in spec.nodes] == ["gelu"]
    assert spec.metadata["onnx_import"]["fused"] == {"gelu(erf)": 1}


def test_hard_sigmoid_times_x_is_hard_swish():
    nodes = [node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5), node("Mul", ["x", "h"])]
    spec = check(model(nodes, (6,)), (6,))
    assert [n.op for n in spec.nodes] == ["hard_swish"]


@pytest.mark.parametrize("layout", [0, 1])
def test_lstm_last_state_and_sequence(layout):
    h, f, t = 5, 3, 4
    ins = ["xt" if layout == 0 else "x", "W", "R", "B"]
    nodes = []
    if layout == 0:
        nodes.append(node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]))
    nodes += [node("LSTM", ins, ["Y", "Y_h"], hidden_size=h, layout=layout)]
    if layout == 0:  # last hidden state (1, N, H) -> (N, H)
        nodes += [node("Squeeze", ["Y_h", "zero"], ["y"])]
    else:  # whole sequence (N, T, 1, H) -> (N, T*H)
        nodes += [node("Reshape", ["Y", "flat"], ["y"])]
    inits = {
        "W": rand(1, 4 * h, f, seed=2) * 0.5,
        "R": rand(1, 4 * h, h, seed=3) * 0.5,
        "B": rand(1, 8 * h, seed=4) * 0.5,
        "zero": np.array([0], np.int64),
        "flat": np.array([0, -1], np.int64),
    }
    spec = check(model(nodes, (t, f), inits), (t, f))
    assert "lstm" in [n.op for n in spec.nodes]


def test_tile_as_repeat_upsampling():
    """tf2onnx's Repeat: (N, C, H, 1, W, 1) tiled to (N, C, H, 2, W, 2), then merged: nearest x2."""
    nodes = [
        node("Unsqueeze", ["x", "ax"], ["u"]),
        node("Tile", ["u", "reps"], ["t"]),
        node("Reshape", ["t", "shape"]),
    ]
    inits = {
        "ax": np.array([3, 5], np.int64),
        "reps": np.array([1, 1, 1, 2, 1, 2], np.int64),
        "shape": np.array([-1, 2, 6, 8], np.int64),
    }
    spec = check(model(nodes, (2, 3, 4), inits), (2, 3, 4))
    assert spec.output_shape == (2, 6, 8)


def test_expand_of_an_activation_broadcasts_size_one_axes():
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Slice", ["s", "z", "one"], ["n"]),
        node("Concat", ["n", "rest"], ["target"], axis=0),
        node("Unsqueeze", ["x", "ax"], ["u"]),  # (N, C, 1, W)
        node("Expand", ["u", "target"]),  # (N, C, 3, W)
    ]
    inits = {
        "z": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "rest": np.array([2, 3, 4], np.int64),
        "ax": np.array([2], np.int64),
    }
    spec = check(model(nodes, (2, 4), inits), (2, 4))
    assert spec.output_shape == (2, 3, 4)


@pytest.mark.parametrize("cube", ["pow", "mul"])
@pytest.mark.parametrize("variant", ["(x*0.5)*(1+tanh)", "x*(1+tanh)*0.5"])
def test_tanh_gelu_patterns_fuse(cube, variant):
    """GPT-2's gelu_new: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))."""
    if cube == "pow":
        nodes = [node("Pow", ["x", "three"], ["c"])]
    else:
        nodes = [node("Mul", ["x", "x"], ["sq"]), node("Mul", ["sq", "x"], ["c"])]
    nodes += [
        node("Mul", ["c", "k3"], ["c3"]),
        node("Add", ["x", "c3"], ["inner"]),
        node("Mul", ["inner", "k"], ["scaled"]),
        node("Tanh", ["scaled"], ["t"]),
        node("Add", ["t", "one"], ["a"]),
    ]
    if variant == "(x*0.5)*(1+tanh)":
        nodes += [node("Mul", ["x", "half"], ["h"]), node("Mul", ["h", "a"])]
    else:
        nodes += [node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"])]
    consts = {"three": 3.0, "k3": 0.044715, "k": (2 / np.pi) ** 0.5, "one": 1.0, "half": 0.5}
    inits = {k: np.array(v, np.float32) for k, v in consts.items()}
    spec = check(model(nodes, (6,), inits), (6,))
    assert [(n.op, n.attrs["approximate"]) for n in spec.nodes] == [("gelu", "tanh")]
    assert spec.metadata["onnx_import"]["fused"] == {"gelu(tanh)": 1}


def test_tanh_gelu_with_a_wrong_constant_is_not_fused():
    """A coefficient that is not GELU's leaves the nodes as they are (and Tanh maps alone)."""
    nodes = [
        node("Mul", ["x", "x"], ["sq"]),
        node("Mul", ["sq", "x"], ["c"]),
        node("Mul", ["c", "k3"], ["c3"]),
        node("Add", ["x", "c3"], ["inner"]),
        node("Mul", ["inner", "k"], ["scaled"]),
        node("Tanh", ["scaled"]),
    ]
    inits = {"k3": np.array(0.05, np.float32), "k": np.array(0.7978846, np.float32)}
    spec = check(model(nodes, (6,), inits), (6,))
    assert "gelu" not in [n.op for n in spec.nodes]


def test_nan_guard_after_softmax_is_dropped():
    """Where(IsNaN(softmax), 0, softmax), as torch's attention writes it, is the softmax."""
    nodes = [
        node("Softmax", ["x"], ["s"], axis=-1),
        node("IsNaN", ["s"], ["nan"]),
        node("Where", ["nan", "zero", "s"]),
    ]
    spec = check(model(nodes, (4, 5), {"zero": np.array(0.0, np.float32)}), (4, 5))
    assert [n.op for n in spec.nodes] == ["softmax"]
    assert spec.metadata["onnx_import"]["fused"] == {"where(isnan(softmax))": 1}


def test_where_that_is_not_a_nan_guard_is_unsupported():
    nodes = [
        node("Relu", ["x"], ["s"]),
        node("IsNaN", ["s"], ["nan"]),
        node("Where", ["nan", "zero", "s"]),
    ]
    m = model(nodes, (5,), {"zero": np.array(0.0, np.float32)})
    with pytest.raises(SpecError, match="IsNaN x1.*\n.*Where x1|Where x1.*\n.*IsNaN x1"):
        from dlbench.spec import from_onnx

        from_onnx(m)


@pytest.mark.parametrize("where", ["before", "after", "both"])
def test_concat_with_constants_is_pad_plus_add(where):
    """ViT's class token: a constant expanded over the batch, concatenated to the patches."""
    ins = {"before": ["e", "x"], "after": ["x", "e"], "both": ["e", "x", "x", "e"]}[where]
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Slice", ["s", "zero", "one"], ["n"]),
        node("Concat", ["n", "rest"], ["shape"], axis=0),
        node("Expand", ["cls", "shape"], ["e"]),  # the class token repeated over the batch
        node("Concat", ins, axis=1),
    ]
    inits = {
        "cls": rand(1, 2, 5, seed=3),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "rest": np.array([2, 5], np.int64),
    }
    spec = check(model(nodes, (4, 5), inits), (4, 5))
    assert [n.op for n in spec.nodes][-2:] == ["pad", "add"]


def test_concat_with_a_constant_between_activations_is_refused():
    from dlbench.spec import from_onnx

    nodes = [node("Concat", ["x", "c", "x"], axis=1)]
    with pytest.raises(SpecError, match="before and after the activations"):
        from_onnx(model(nodes, (4, 5), {"c": rand(1, 2, 5)}))


def test_global_average_pool_of_a_sequence():
    """(N, C, L) -> (N, C, 1): Swin's pooler (AdaptiveAvgPool1d)."""
    spec = check(model([node("GlobalAveragePool", ["x"])], (6, 7)), (6, 7))
    assert [n.op for n in spec.nodes] == ["reduce_mean"]


def test_fixed_batch_graph_with_batch_sized_constant_and_merged_reshape():
    """A graph exported at batch 2: reshapes name the batch (2) or merge it (2*4); a constant
    that repeats one sample per batch entry is that sample; the spec runs at any batch."""
    mask = np.repeat(rand(1, 4, 3, seed=5), 2, axis=0)
    nodes = [
        node("Add", ["x", "mask"], ["a"]),
        node("Reshape", ["a", "merged"], ["r"]),  # (8, 3)
        node("Relu", ["r"], ["rr"]),
        node("Reshape", ["rr", "back"]),  # (2, 4, 3)
    ]
    inits = {
        "mask": mask,
        "merged": np.array([8, 3], np.int64),
        "back": np.array([2, 4, 3], np.int64),
    }
    m = model(nodes, (4, 3), inits, batch=2)
    spec = check(m, (4, 3), batch=2)
    from onnx_import_helpers import run_spec

    x = rand(5, 4, 3, seed=7)
    np.testing.assert_allclose(run_spec(spec, x), np.maximum(x + mask[:1], 0), rtol=1e-6)


def test_batch_sized_constant_that_varies_is_refused():
    from dlbench.spec import from_onnx

    nodes = [node("Add", ["x", "mask"])]
    with pytest.raises(SpecError, match="varies along the batch axis"):
        from_onnx(model(nodes, (4, 3), {"mask": rand(2, 4, 3)}, batch=2))


def test_decomposed_layer_norm_and_erf_map_to_sqrt_div_erf():
    """LayerNorm and erf as exporters decompose them (tf2onnx, jax2onnx): Pow, Sqrt, Div by an
    activation, Reciprocal, Neg and a bare Erf."""
    nodes = [
        node("ReduceMean", ["x", "last"], ["mu"], keepdims=1),
        node("Sub", ["x", "mu"], ["xc"]),
        node("Pow", ["xc", "two"], ["sq"]),
        node("ReduceMean", ["sq", "last"], ["var"], keepdims=1),
        node("Add", ["var", "eps"], ["ve"]),
        node("Sqrt", ["ve"], ["sd"]),
        node("Div", ["xc", "sd"], ["z"]),
        node("Reciprocal", ["sd"], ["r"]),
        node("Mul", ["z", "r"], ["zr"]),
        node("Neg", ["zr"], ["nz"]),
        node("Erf", ["nz"], ["e"]),
        node("Div", ["one", "sd"], ["inv"]),
        node("Mul", ["e", "inv"]),
    ]
    inits = {
        "last": np.array([-1], np.int64),
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-3, np.float32),
        "one": np.array(3.0, np.float32),
    }
    spec = check(model(nodes, (4, 6), inits), (4, 6))
    ops = [n.op for n in spec.nodes]
    assert {"sqrt", "div", "reciprocal", "erf"} <= set(ops)


@pytest.mark.parametrize("e", [-1.0, -0.5, 0.5, 1.0, 2.0, 3.0])
def test_pow_with_a_constant_exponent(e):
    nodes = [node("Sigmoid", ["x"], ["s"]), node("Pow", ["s", "e"])]
    check(model(nodes, (7,), {"e": np.array(e, np.float32)}), (7,))


def test_pow_with_another_exponent_is_refused():
    from dlbench.spec import from_onnx

    nodes = [node("Pow", ["x", "e"])]
    with pytest.raises(SpecError, match="constant exponent in"):
        from_onnx(model(nodes, (7,), {"e": np.array(1.7, np.float32)}))


# -- integer token ids: Gather on a constant table -------------------------------------------------


def _ids_model(nodes, inits, x_shape=(5,), x_dtype=np.int64):
    return model(nodes, x_shape, inits, x_name="ids", x_dtype=x_dtype)


def _ids(shape, vocab=11, seed=0, dtype=np.int64):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(dtype)


@pytest.mark.parametrize("x_dtype", [np.int64, np.int32])
def test_gather_of_a_constant_table_by_token_ids_is_an_embedding(x_dtype):
    from onnx_import_helpers import reference, run_spec

    from dlbench.spec import from_onnx

    nodes = [
        node("Cast", ["ids"], ["i64"], to=7),  # an integer cast changes nothing
        node("Reshape", ["i64", "shape"], ["r"]),  # (N, 5) -> (N, 5, 1): ids stay ids
        node("Gather", ["table", "r"], ["e"]),  # (N, 5, 1, 6)
        node("Reshape", ["e", "flat"], ["f"]),  # (N, 5, 6)
        node("MatMul", ["f", "w"], ["y"]),
    ]
    inits = {
        "shape": np.array([0, 5, 1], np.int64),
        "table": rand(11, 6),
        "flat": np.array([0, 5, 6], np.int64),
        "w": rand(6, 3, seed=2),
    }
    m = _ids_model(nodes, inits, x_dtype=x_dtype)
    spec = from_onnx(m)
    assert spec.inputs[0].dtype == "int64" and spec.input_desc().vocab == 11
    assert [n.op for n in spec.nodes][:2] == ["reshape", "embedding"]
    assert spec.params["table"].shape == (11, 6)  # the table is the spec weight, unchanged
    ids = _ids((4, 5), dtype=x_dtype)
    np.testing.assert_allclose(run_spec(spec, ids), reference(m, ids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "nodes, inits, message",
    [
        (  # ids used as numbers
            [node("Cast", ["ids"], ["c"], to=1), node("Relu", ["c"])],
            {},
            "a cast of integer token ids to element type 1 is not supported",
        ),
        (
            [node("Gather", ["table", "ids"], ["y"], axis=1)],
            {"table": rand(6, 11)},
            "only a lookup of rows \\(axis 0\\) of a constant table is supported",
        ),
        ([node("Relu", ["ids"])], {}, "holds integer token ids"),
    ],
)
def test_token_ids_used_otherwise_are_a_clear_error(nodes, inits, message):
    from dlbench.spec import from_onnx

    with pytest.raises(SpecError, match=message):
        from_onnx(_ids_model(nodes, inits))


def test_float_indices_into_a_constant_table_are_a_clear_error():
    from dlbench.spec import from_onnx

    m = model([node("Gather", ["table", "x"])], (5,), {"table": rand(11, 6)})
    with pytest.raises(SpecError, match="expected the indices 'x' to be integer token ids"):
        from_onnx(m)


# -- jax2onnx's window sum: a 6-D Conv of ones between Unsqueezes and a Squeeze ----------------------


def _sum_pool_model(kernel, strides=(1, 1, 2, 2), pads=None, one_unsqueeze=False):
    nodes = (
        [node("Unsqueeze", ["x", "a01"], ["u2"])]
        if one_unsqueeze
        else [node("Unsqueeze", ["x", "a0"], ["u1"]), node("Unsqueeze", ["u1", "a1"], ["u2"])]
    )
    conv = {"strides": list(strides)} | ({"pads": pads} if pads else {})
    nodes += [node("Conv", ["u2", "k"], ["c"], **conv), node("Squeeze", ["c", "a01"])]
    inits = {
        "a0": np.array([0], np.int64),
        "a1": np.array([1], np.int64),
        "a01": np.array([0, 1], np.int64),
        "k": kernel,
    }
    return model(nodes, (3, 7, 8), inits)


@pytest.mark.parametrize(
    "kernel_hw, strides, pads, one_unsqueeze",
    [
        ((2, 2), (1, 1, 2, 2), None, False),  # lenet5's average pool (before its Mul by 1/4)
        ((3, 2), (1, 1, 2, 3), [0, 0, 1, 0, 0, 0, 1, 1], True),  # padded, rectangular
    ],
)
def test_six_d_window_sum_is_an_average_pool_times_the_window(
    kernel_hw, strides, pads, one_unsqueeze
):
    k = np.ones((1, 1, 1, 1, *kernel_hw), np.float32)
    spec = check(_sum_pool_model(k, strides, pads, one_unsqueeze), (3, 7, 8))
    assert [n.op for n in spec.nodes] == ["pad"] * bool(pads) + ["avg_pool", "mul"]
    assert spec.metadata["onnx_import"]["fused"] == {"sum_pool(6-D conv)": 1}


def test_six_d_conv_that_is_not_a_window_sum_is_not_fused():
    k = np.ones((1, 1, 1, 1, 2, 2), np.float32)
    k[..., 0, 0] = 2.0  # a weighted window: not a sum
    with pytest.raises(SpecError, match="only 2-D convolution and pooling are supported"):
        check(_sum_pool_model(k), (3, 7, 8))


# -- Loop with a static trip count: unrolled ------------------------------------------------------


def _rnn_loop_model(trips=4, cond_body=None, extra_body=()):
    """x (N, T=4, D=3) -> a tanh RNN over time as a Loop (jax2onnx's lax.scan form): carried h,
    scan output every h; outputs the last h and the sequence batch-first."""
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    body_nodes = [
        node("Gather", ["seq", "it"], ["xt"], axis=0),
        node("MatMul", ["xt", "W"], ["a"]),
        node("MatMul", ["h", "U"], ["b"]),
        node("Add", ["a", "b"], ["s"]),
        node("Tanh", ["s"], ["h2"]),
        node("Identity", ["h2"], ["h_scan"]),
        node("Identity", ["seq"], ["seq2"]),
        *extra_body,
        *(cond_body or [node("Identity", ["c"], ["c2"])]),
    ]
    body = helper.make_graph(
        body_nodes,
        "body",
        [
            vi("it", TensorProto.INT64, []),
            vi("c", TensorProto.BOOL, []),
            vi("h", TensorProto.FLOAT, None),
            vi("seq", TensorProto.FLOAT, None),
        ],
        [
            vi("c2", TensorProto.BOOL, []),
            vi("h2", TensorProto.FLOAT, None),
            vi("seq2", TensorProto.FLOAT, None),
            vi("h_scan", TensorProto.FLOAT, None),
        ],
    )
    loop = helper.make_node(
        "Loop", ["M", "cond", "h0", "tm"], ["h_last", "seq_out", "hs"], name="loop", body=body
    )
    nodes = [
        node("Transpose", ["x"], ["tm"], perm=[1, 0, 2]),
        loop,
        node("Transpose", ["hs"], ["seq_bf"], perm=[1, 0, 2]),
        node("ReduceMean", ["seq_bf", "ax1"], ["m"], keepdims=0),
        node("Add", ["h_last", "m"]),
    ]
    inits = {
        "M": np.array(trips, np.int64),
        "cond": np.array(True),
        "h0": np.zeros((1, 5), np.float32),
        "W": rand(3, 5),
        "U": rand(5, 5, seed=2),
        "ax1": np.array([1], np.int64),
    }
    return model(nodes, (4, 3), inits)


def test_loop_with_a_static_trip_count_is_unrolled():
    # against ONNX Runtime: ONNX's reference evaluator concatenates scan outputs along axis 0
    # instead of stacking them along a new axis as the operator's definition (and ORT) does
    ort = pytest.importorskip("onnxruntime")
    from onnx_import_helpers import run_spec

    from dlbench.spec import from_onnx

    m = _rnn_loop_model()
    spec = from_onnx(m)
    x = rand(3, 4, 3, seed=5)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_spec(spec, x), want, rtol=1e-4, atol=1e-5)
    onnx_ops = spec.metadata["onnx_import"]["onnx_ops"]
    assert onnx_ops["Loop"] == 1 and onnx_ops["Tanh"] == 4  # the body, once per iteration
    w = [n.params["weight"] for n in spec.nodes if n.op == "dense"]
    assert len(set(w)) == 2  # W and U: one weight each however many copies use them


def test_loop_body_ops_that_do_not_map_are_listed_before_anything_is_built():
    from dlbench.spec import from_onnx

    cond = [node("ReduceMax", ["h2"], ["mx"], keepdims=0), node("Less", ["mx", "one"], ["c2"])]
    m = _rnn_loop_model(cond_body=cond, extra_body=[node("Constant", [], ["one"], value_float=1.0)])
    with pytest.raises(SpecError, match=r"ReduceMax x1: loop/reducemax_mx") as info:
        from_onnx(m)
    assert "Less x1: loop/less_c2" in str(info.value)


def test_loop_with_an_absurd_trip_count_is_a_clear_error():
    from dlbench.spec import from_onnx

    with pytest.raises(SpecError, match="expected a trip count that unrolls into at most"):
        from_onnx(_rnn_loop_model(trips=10**9))


def test_constant_gather_elements_folds_where_onnx_reference_fails():
    # BERT's token-type ids: GatherElements of a (1, 512) buffer by (1, 128) position ids, which
    # ONNX's reference evaluator cannot compute; folded with take_along_axis
    nodes = [node("GatherElements", ["buf", "pos"], ["t"], axis=1), node("Add", ["x", "t"])]
    inits = {
        "buf": np.arange(512, dtype=np.float32)[None] * 0.5,
        "pos": np.arange(3, 131, dtype=np.int64)[None],
    }
    from onnx_import_helpers import run_spec

    from dlbench.spec import from_onnx

    spec = from_onnx(model(nodes, (128,), inits))
    x = rand(2, 128)
    np.testing.assert_allclose(run_spec(spec, x), x + np.arange(3, 131)[None] * 0.5, rtol=1e-6)


def test_a_graph_input_neither_float_nor_ids_is_a_clear_error():
    from dlbench.spec import from_onnx

    m = model([node("Not", ["x"], ["n"]), node("Cast", ["n"], to=1)], (4,), x_dtype=np.bool_)
    with pytest.raises(SpecError, match="expected a float tensor or integer token ids"):
        from_onnx(m)
