"""Handlers of NCHW spatial ops: pools, global pooling, ReduceMean, Resize, Pad."""

from __future__ import annotations

import numpy as np

from dlbench.model.onnx_import.handlers import (
    _conv_pads,
    _fail,
    _nchw,
    handles,
)
from dlbench.model.onnx_import.values import BATCH

# -- pooling and resizing -------------------------------------------------------------------------


@handles("MaxPool", "AveragePool")
def _pool(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    op = n.op_type
    k = list(attrs["kernel_shape"])
    s = list(attrs.get("strides", [1, 1]))
    if len(k) != 2:
        raise _fail(label, op, f"only 2-D pooling is supported. Received kernel_shape={k}")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise _fail(label, op, "dilated pooling is not supported")
    if op == "MaxPool" and len(n.output) > 1 and n.output[1]:
        raise _fail(label, op, "the Indices output is not supported")
    t, b, left, right = _conv_pads(label, op, attrs, k, s, [1, 1], x.s[1:])
    if t != b or left != right:
        raise _fail(
            label,
            op,
            f"only symmetric padding is supported. Received (top, bottom, left, right)={[t, b, left, right]}",
        )
    a = {
        "kernel_size": k,
        "stride": s,
        "padding": [t, left],
        "ceil_mode": bool(attrs.get("ceil_mode", 0)),
    }
    if op == "AveragePool":
        a["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        return [cv.emit("avg_pool", [x], a, hint=label)]
    return [cv.emit("max_pool", [x], a, hint=label)]


@handles("GlobalAveragePool")
def _gap(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if x.b == 0 and x.rank in (3, 5):  # 1-D (Swin's pooler) or 3-D: a mean over the spatial axes
        axes = list(range(2, x.rank))
        return [cv.emit("reduce_mean", [x], {"axes": axes, "keepdims": True}, hint=label)]
    x = _nchw(cv, n, label)
    y = cv.emit("global_avg_pool", [x], hint=label)
    return [cv.reshape(y, (x.s[0], 1, 1), 0, f"{label}.keepdims")]


@handles("ReduceMean")
def _reduce_mean(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if cv.opset >= 18:
        axes = cv.const(n.input[1], label, "axes") if len(n.input) > 1 and n.input[1] else None
    else:
        axes = attrs.get("axes")
    if axes is None or len(np.asarray(axes).reshape(-1)) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.rank))
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    keep = bool(attrs.get("keepdims", 1))
    spec_axes = [x.spec_axis(a, label, "axes") for a in axes]
    onnx_axes = {a % x.rank for a in axes}
    nb = x.b if keep else x.b - sum(a < x.b for a in onnx_axes)
    return [cv.emit("reduce_mean", [x], {"axes": spec_axes, "keepdims": keep}, hint=label, b=nb)]


@handles("Resize")
def _resize(cv, n, label, attrs):
    x = _nchw(cv, n, label)
    if attrs.get("mode", "nearest") != "nearest":
        raise _fail(
            label, "Resize", f"only mode='nearest' is supported. Received {attrs.get('mode')!r}"
        )
    ins = list(n.input) + [""] * 4
    scales = cv.const(ins[2], label, "scales") if ins[2] else None
    sizes = cv.const(ins[3], label, "sizes") if ins[3] else None
    axes = list(attrs.get("axes", range(4)))
    axes = [a % 4 for a in axes]
    full = [1.0, 1.0, 1.0, 1.0]
    if scales is not None and np.asarray(scales).size:
        for a, v in zip(axes, np.asarray(scales, np.float64).reshape(-1)):
            full[a] = float(v)
    elif sizes is not None and np.asarray(sizes).size:
        if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise _fail(
                label, "Resize", "keep_aspect_ratio_policy other than 'stretch' is not supported"
            )
        dims = (1, *x.s)
        for a, v in zip(axes, np.asarray(sizes).reshape(-1)):
            full[a] = 1.0 if a == 0 or v == BATCH else float(v) / dims[a]
    else:
        raise _fail(label, "Resize", "expected constant scales or sizes")
    if full[0] != 1.0 or full[1] != 1.0 or any(f < 1 or f != int(f) for f in full[2:]):
        raise _fail(
            label,
            "Resize",
            f"only integer up-scaling of H and W is supported. Received scales {full}",
        )
    ct = attrs.get("coordinate_transformation_mode", "half_pixel")
    nm = attrs.get("nearest_mode", "round_prefer_floor")
    exact = (ct == "asymmetric" and nm == "floor") or (
        ct in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")
        and nm in ("round_prefer_floor", "round_prefer_ceil")
    )
    if not exact and full[2:] != [1.0, 1.0]:
        raise _fail(
            label,
            "Resize",
            f"coordinate_transformation_mode={ct!r} with nearest_mode={nm!r} is not a plain repeat",
        )
    return [
        cv.emit(
            "upsample",
            [x],
            {"scale_factor": [int(full[2]), int(full[3])], "mode": "nearest"},
            hint=label,
        )
    ]


@handles("Pad")
def _pad(cv, n, label, attrs):
    x = cv.act(n.input[0], label)
    if attrs.get("mode", "constant") != "constant":
        raise _fail(
            label, "Pad", f"only mode='constant' is supported. Received {attrs.get('mode')!r}"
        )
    pads = [int(p) for p in np.asarray(cv.const(n.input[1], label, "pads")).reshape(-1)]
    value = 0.0
    if len(n.input) > 2 and n.input[2]:
        value = float(np.asarray(cv.const(n.input[2], label, "constant_value")).reshape(()))
    axes = list(range(x.rank))
    if len(n.input) > 3 and n.input[3]:
        axes = [
            int(a) % x.rank for a in np.asarray(cv.const(n.input[3], label, "axes")).reshape(-1)
        ]
    if len(pads) != 2 * len(axes):
        raise _fail(label, "Pad", f"expected {2 * len(axes)} pads. Received {pads}")
    per = {a: (pads[i], pads[i + len(axes)]) for i, a in enumerate(axes)}
    if per.get(x.b, (0, 0)) != (0, 0):
        raise _fail(label, "Pad", "padding the batch axis is not supported")
    spec_pads = []
    for a in range(x.rank):
        if a != x.b:
            spec_pads += list(per.get(a, (0, 0)))
    if not any(spec_pads):
        return [x]
    return [cv.emit("pad", [x], {"pads": spec_pads, "value": value}, hint=label, b=x.b)]
