"""Builders of small ONNX graphs and the check shared by the import tests."""

from __future__ import annotations

import numpy as np


def model(
    nodes,
    x_shape,
    inits=None,
    outputs=("y",),
    opset=18,
    x_name="x",
    batch="N",
    domains=None,
    x_dtype=np.float32,
):
    """A one-input model (float, or ``x_dtype=np.int64`` for token ids); ``inits`` maps
    name -> array; output shapes left to inference."""
    from onnx import TensorProto, helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(x_dtype))
    inp = helper.make_tensor_value_info(x_name, elem, [batch, *x_shape])
    outs = []
    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(nodes, "g", [inp], outs, init)
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = 8
    # give the outputs their real shapes (onnx.checker requires a type): run one small batch
    from onnx.reference import ReferenceEvaluator

    graph = m.graph
    graph.ClearField("output")
    graph.output.extend(
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N"]) for o in outputs]
    )
    try:
        n = 2 if isinstance(batch, str) else batch
        x = np.zeros((n, *[d if isinstance(d, int) else 2 for d in x_shape]), x_dtype)
        results = ReferenceEvaluator(m).run(None, {x_name: x})
    except Exception:  # a model meant to fail: leave the outputs of rank 1
        return m
    graph.ClearField("output")
    for o, r in zip(outputs, results):
        shape = [batch if i == 0 else d for i, d in enumerate(r.shape)]
        graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, shape))
    return m


def reference(m, x):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(m).run(None, {m.graph.input[0].name: x})[0]


def run_spec(spec, x):
    import dlbench

    return dlbench.get_backend("numpy").build(spec).predict(x)


def check(m, x_shape, batch=3, atol=1e-5, seed=0):
    """Import ``m``, run the spec on the NumPy reference and ONNX's reference; return the spec."""
    from dlbench.spec import from_onnx

    spec = from_onnx(m)
    x = np.random.default_rng(seed).standard_normal((batch, *x_shape)).astype(np.float32)
    want = reference(m, x)
    got = run_spec(spec, x)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=atol, rtol=1e-4)
    return spec


def rand(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def node(op, inputs, outputs=("y",), **attrs):
    from onnx import helper

    return helper.make_node(
        op, list(inputs), list(outputs), name=f"{op.lower()}_{outputs[0]}", **attrs
    )
