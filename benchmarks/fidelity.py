"""Is each backend as fast as its framework's own idiom? dlbench's build against hand-written
models with the same weights (issue 23).

For each zoo model (resnet20, mobilenet_v2, vit_tiny, lstm) and batch size, per framework, in
one fresh process per framework (threads fixed before the framework loads, as the runner does;
the workers' allocator settings as ``dlbench run`` sets them, ``--allocator``), two contenders:

- ``dlbench``: ``get_backend(fw, intra_op_threads=T, inter_op_threads=1).build(spec)``, timed as
  ``model.sync(model.forward(x))`` on an input placed once (``model.to_device``);
- ``hand``: the same network written by hand the way a user of that framework writes it, with
  none of dlbench's builder: a plain ``nn.Module`` (``nn.ReLU(inplace=True)``, ``out +=
  shortcut``) called under ``torch.inference_mode()``; a Keras functional model (NHWC,
  ``ZeroPadding2D`` before stride-2 convolutions, ``MultiHeadAttention``, ``LSTM``) called
  through ``tf.function``; a ``jax.jit`` function over NHWC/HWIO arrays; ONNX Runtime on the
  ``torch.onnx.export`` of the hand-written ``nn.Module`` (default session options but the
  threads). The hand-written input is in its own idiomatic layout, converted once, untimed.

The spec's weights are loaded into the hand-written model by name (every weight used exactly
once, every model weight set), and both outputs are compared on the timed batch before any
timing: a difference above ``--tolerance`` times the output scale aborts the run.

Timing: a short warm-up each, then ``--rounds`` rounds; in each round each contender makes
calls for ``--round-time`` seconds (at least one), in alternating order (dlbench first in even
rounds, hand-written first in odd ones); per round the median call; the figure is the median of
the round medians, and the ratio is the median over rounds of ``dlbench / hand`` in that round
(paired, so load that drifts between rounds cancels; goal: <= 1.05). Minor page faults per call
(``getrusage``) are reported for both. A ratio is meaningful only on a quiet machine.

Usage:
    .venv/bin/python benchmarks/fidelity.py [--models resnet20,lstm] [--batches 1,32,256]
        [--frameworks torch,tensorflow,jax,onnxruntime] [--threads 1] [--rounds 5]
        [--round-time 0.25] [--allocator tuned|system] [--json out.json]

Without ``--batches`` each model runs its default batches (:data:`DEFAULT_BATCHES`: the larger
models skip 256 so that a full run takes under 10 minutes on the 2-core CI machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime")
MODELS = ("resnet20", "mobilenet_v2", "vit_tiny", "lstm")
DEFAULT_BATCHES = {
    "resnet20": (1, 32, 256),
    "mobilenet_v2": (1, 32),
    "vit_tiny": (1, 32),
    "lstm": (1, 32, 256),
}
#: ``(in, t, c, stride)`` per MobileNetV2 block, CIFAR variant (dlbench.model.zoo.mobilenet).
MOBILENET_CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
MOBILENET_CFG += [(6, 160, 3, 2), (6, 320, 1, 1)]


class Mismatch(SystemExit):
    pass


def mobilenet_blocks() -> list[tuple[int, int, int, int]]:
    """``(cin, t, c, stride)`` of every inverted-residual block, in order."""
    out, cin = [], 32
    for t, c, n, s in MOBILENET_CFG:
        for i in range(n):
            out.append((cin, t, c, s if i == 0 else 1))
            cin = c
    return out


def by_node(spec: Any) -> dict[str, dict[str, np.ndarray]]:
    """The spec's weights as ``{node: {role: array}}`` (``stem.bn`` -> ``{"mean": ...}``)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, array in spec.params.items():
        node, _, role = name.rpartition(".")
        out.setdefault(node, {})[role] = np.asarray(array, np.float32)
    return out


# -- PyTorch -----------------------------------------------------------------------------------


def torch_model(name: str, spec: Any) -> Any:
    """The hand-written ``nn.Module`` with the spec's weights (by name)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    classes = spec.params["head.weight"].shape[0]

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.pad = (planes - cin) // 2  # option A shortcut: subsample, zero channels

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.pad:
                out += F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            else:
                out += x
            return self.relu(out)

    class Stem(nn.Module):
        def __init__(self, cin: int, cout: int, k: int = 3) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return self.bn(self.conv(x))

    class ResNet20(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = Stem(3, 16)
            self.relu = nn.ReLU(inplace=True)
            cin = 16
            for stage, planes in ((1, 16), (2, 32), (3, 64)):
                blocks = []
                for i in range(3):
                    blocks.append(BasicBlock(cin, planes, 2 if stage > 1 and i == 0 else 1))
                    cin = planes
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            self.head = nn.Linear(64, classes)

        def forward(self, x):
            x = self.relu(self.stem(x))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.head(x.mean((2, 3)))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, t: int, c: int, stride: int) -> None:
            super().__init__()
            hidden = cin * t
            self.t = t
            if t != 1:
                self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
                self.expand_bn = nn.BatchNorm2d(hidden)
            self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
            self.dw_bn = nn.BatchNorm2d(hidden)
            self.project = nn.Conv2d(hidden, c, 1, bias=False)
            self.project_bn = nn.BatchNorm2d(c)
            self.relu6 = nn.ReLU6(inplace=True)
            self.residual = stride == 1 and cin == c

        def forward(self, x):
            y = self.relu6(self.expand_bn(self.expand(x))) if self.t != 1 else x
            y = self.relu6(self.dw_bn(self.dw(y)))
            y = self.project_bn(self.project(y))
            return x + y if self.residual else y

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = Stem(3, 32)
            self.relu6 = nn.ReLU6(inplace=True)
            self.blocks = [f"block{k}" for k in range(len(mobilenet_blocks()))]
            for k, cfg in enumerate(mobilenet_blocks()):
                setattr(self, f"block{k}", InvertedResidual(*cfg))
            self.last = Stem(320, 1280, k=1)
            self.head = nn.Linear(1280, classes)

        def forward(self, x):
            x = self.relu6(self.stem(x))
            for name in self.blocks:
                x = getattr(self, name)(x)
            x = self.relu6(self.last(x))
            return self.head(x.mean((2, 3)))

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.ln2 = nn.LayerNorm(dim, eps=1e-6)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.gelu = nn.GELU()
            self.fc2 = nn.Linear(4 * dim, dim)

        def forward(self, x):
            y = self.ln1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            return x + self.fc2(self.gelu(self.fc1(self.ln2(x))))

    class ViT(nn.Module):
        def __init__(self, dim: int = 192, depth: int = 12, heads: int = 3) -> None:
            super().__init__()
            self.patch_embed = nn.Conv2d(3, dim, 4, 4)
            self.pos_embed = nn.Parameter(torch.zeros(1, 64, dim))
            self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
            return self.head(self.norm(self.blocks(x)).mean(1))

    class RowLSTM(nn.Module):
        def __init__(self, hidden: int = 128) -> None:
            super().__init__()
            self.lstm = nn.LSTM(96, hidden, batch_first=True)
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):
            n, c, h, w = x.shape
            y, _ = self.lstm(x.permute(0, 2, 1, 3).reshape(n, h, c * w))
            return self.head(y[:, -1])

    module = {"resnet20": ResNet20, "mobilenet_v2": MobileNetV2, "vit_tiny": ViT}
    module = {**module, "lstm": RowLSTM}[name]().eval()

    def torch_name(spec_name: str) -> str:
        node, _, role = spec_name.rpartition(".")
        if name == "vit_tiny" and node.startswith("block"):
            node = "blocks." + node[len("block") :]
        role = {"mean": "running_mean", "var": "running_var"}.get(role, role)
        if node.endswith(".attn") or node == "attn":
            role = {
                "in_weight": "in_proj_weight",
                "in_bias": "in_proj_bias",
                "out_weight": "out_proj.weight",
                "out_bias": "out_proj.bias",
            }[role]
        if node == "pos_embed":
            return "pos_embed"
        if node == "lstm":
            role += "_l0"
        return f"{node}.{role}"

    state = module.state_dict()
    unset = {k for k in state if not k.endswith("num_batches_tracked")}
    new = {}
    for spec_name, array in spec.params.items():
        key = torch_name(spec_name)
        if key not in state:
            raise Mismatch(f"fidelity: {name}: spec weight {spec_name!r} has no place ({key!r})")
        new[key] = torch.from_numpy(np.asarray(array, np.float32)).reshape(state[key].shape)
        unset.discard(key)
    if unset:
        raise Mismatch(f"fidelity: {name}: hand-written weights left unset: {sorted(unset)}")
    module.load_state_dict(new, strict=False)
    return module


def torch_contender(name: str, spec: Any) -> tuple[Callable, Callable, Any]:
    import torch

    module = torch_model(name, spec)

    def call(x):
        with torch.inference_mode():
            return module(x)

    return (
        lambda a: torch.from_numpy(np.ascontiguousarray(a)),
        call,
        lambda y: y.numpy(),
    )


# -- ONNX Runtime on the export of the hand-written module -------------------------------------


def ort_contender(name: str, spec: Any, threads: int) -> tuple[Callable, Callable, Any]:
    import io

    import onnxruntime as ort
    import torch

    module = torch_model(name, spec)
    buf = io.BytesIO()
    example = torch.zeros((2, *spec.inputs[0].shape[1:]), dtype=torch.float32)
    torch.onnx.export(
        module,
        (example,),
        buf,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    return (
        lambda a: np.ascontiguousarray(a),
        lambda x: session.run(None, {"input": x})[0],
        lambda y: y,
    )


# -- Keras ------------------------------------------------------------------------------------


def keras_model(name: str, spec: Any) -> Any:
    """The hand-written Keras functional model (NHWC) with the spec's weights (by name)."""
    import keras
    from keras import layers, ops

    classes = spec.params["head.weight"].shape[0]
    P = by_node(spec)
    setters: list[tuple[str, Callable[[Any], list[np.ndarray]]]] = []  # (layer, weights)

    def hwio(w):
        return w.transpose(2, 3, 1, 0)

    def conv(x, node, filters, k, stride=1, groups=1, bias=False, pad=None):
        pad = k // 2 if pad is None else pad
        if pad == 0:
            padding = "valid"
        elif stride > 1:  # PyTorch-style symmetric padding, then a valid conv
            x = layers.ZeroPadding2D(pad)(x)
            padding = "valid"
        else:
            padding = "same"
        if groups > 1:
            layer = layers.DepthwiseConv2D(
                k, strides=stride, padding=padding, use_bias=bias, name=node
            )
            setters.append((node, lambda p: [p["weight"].transpose(2, 3, 0, 1)]))
        else:
            layer = layers.Conv2D(
                filters, k, strides=stride, padding=padding, use_bias=bias, name=node
            )
            setters.append(
                (node, lambda p: [hwio(p["weight"])] + ([p["bias"]] if "bias" in p else []))
            )
        return layer(x)

    def bn(x, node):
        setters.append((node, lambda p: [p["weight"], p["bias"], p["mean"], p["var"]]))
        return layers.BatchNormalization(epsilon=1e-5, name=node)(x)

    def dense(x, node, units, activation=None):
        setters.append((node, lambda p: [p["weight"].T, p["bias"]]))
        return layers.Dense(units, activation=activation, name=node)(x)

    def ln(x, node):
        setters.append((node, lambda p: [p["weight"], p["bias"]]))
        return layers.LayerNormalization(epsilon=1e-6, name=node)(x)

    if name == "resnet20":
        inp = keras.Input((32, 32, 3))
        x = layers.ReLU()(bn(conv(inp, "stem.conv", 16, 3), "stem.bn"))
        cin = 16
        for stage, planes in ((1, 16), (2, 32), (3, 64)):
            for i in range(3):
                t, stride = f"layer{stage}.{i}", 2 if stage > 1 and i == 0 else 1
                y = layers.ReLU()(bn(conv(x, f"{t}.conv1", planes, 3, stride), f"{t}.bn1"))
                y = bn(conv(y, f"{t}.conv2", planes, 3), f"{t}.bn2")
                if planes != cin:
                    p = (planes - cin) // 2
                    x = layers.Lambda(
                        lambda v, p=p: ops.pad(v[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [p, p]])
                    )(x)
                x = layers.ReLU()(layers.Add()([y, x]))
                cin = planes
        out = dense(layers.GlobalAveragePooling2D()(x), "head", classes)
    elif name == "mobilenet_v2":
        inp = keras.Input((32, 32, 3))
        x = layers.ReLU(6.0)(bn(conv(inp, "stem.conv", 32, 3), "stem.bn"))
        for k, (cin, t, c, s) in enumerate(mobilenet_blocks()):
            tag, y = f"block{k}", x
            if t != 1:
                y = layers.ReLU(6.0)(bn(conv(y, f"{tag}.expand", cin * t, 1), f"{tag}.expand_bn"))
            y = conv(y, f"{tag}.dw", cin * t, 3, s, groups=cin * t)
            y = layers.ReLU(6.0)(bn(y, f"{tag}.dw_bn"))
            y = bn(conv(y, f"{tag}.project", c, 1), f"{tag}.project_bn")
            x = layers.Add()([x, y]) if s == 1 and cin == c else y
        x = layers.ReLU(6.0)(bn(conv(x, "last.conv", 1280, 1), "last.bn"))
        out = dense(layers.GlobalAveragePooling2D()(x), "head", classes)
    elif name == "vit_tiny":
        dim, heads = 192, 3

        class PositionEmbedding(layers.Layer):
            def build(self, shape):
                self.pos = self.add_weight(shape=(1, shape[1], shape[2]), name="pos")

            def call(self, x):
                return x + self.pos

        inp = keras.Input((32, 32, 3))
        x = conv(inp, "patch_embed", dim, 4, 4, bias=True, pad=0)
        x = layers.Reshape((64, dim))(x)
        setters.append(("pos_embed", lambda p: [p["other"][None]]))
        x = PositionEmbedding(name="pos_embed")(x)
        for i in range(12):
            tag = f"block{i}"
            y = ln(x, f"{tag}.ln1")
            mha = layers.MultiHeadAttention(heads, dim // heads, name=f"{tag}.attn")

            def mha_weights(p, d=dim, h=heads):
                w, b = p["in_weight"], p["in_bias"]
                out = []
                for j in range(3):
                    out.append(w[j * d : (j + 1) * d].T.reshape(d, h, d // h))
                    out.append(b[j * d : (j + 1) * d].reshape(h, d // h))
                return [*out, p["out_weight"].T.reshape(h, d // h, d), p["out_bias"]]

            setters.append((f"{tag}.attn", mha_weights))
            x = layers.Add()([x, mha(y, y)])
            y = dense(ln(x, f"{tag}.ln2"), f"{tag}.fc1", 4 * dim, activation="gelu")
            x = layers.Add()([x, dense(y, f"{tag}.fc2", dim)])
        x = layers.GlobalAveragePooling1D()(ln(x, "norm"))
        out = dense(x, "head", classes)
    elif name == "lstm":
        inp = keras.Input((32, 32, 3))
        x = layers.Reshape((32, 96))(layers.Permute((1, 3, 2))(inp))  # rows of (C, W)
        setters.append(
            (
                "lstm",
                lambda p: [p["weight_ih"].T, p["weight_hh"].T, p["bias_ih"] + p["bias_hh"]],
            )
        )
        x = layers.LSTM(128, name="lstm")(x)
        out = dense(x, "head", classes)
    else:
        raise SystemExit(f"fidelity: no hand-written Keras {name}")
    model = keras.Model(inp, out)
    used: set[str] = set()
    for node, make in setters:
        layer = model.get_layer(node)
        arrays = make(P[node])
        want = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(a.shape) for a in arrays] != want:
            raise Mismatch(f"fidelity: keras {name} {node}: shapes {want}")
        layer.set_weights(arrays)
        used.add(node)
    if set(P) - used:
        raise Mismatch(f"fidelity: keras {name}: spec weights unused: {sorted(set(P) - used)}")
    return model


def keras_contender(name: str, spec: Any) -> tuple[Callable, Callable, Any]:
    import tensorflow as tf

    model = keras_model(name, spec)

    @tf.function
    def infer(x):
        return model(x, training=False)

    return (
        lambda a: tf.constant(np.ascontiguousarray(a.transpose(0, 2, 3, 1))),
        infer,
        lambda y: y.numpy(),
    )


# -- JAX --------------------------------------------------------------------------------------


def jax_function(name: str) -> Callable:
    """The hand-written forward ``f(params, x_nhwc)`` (params: :func:`jax_params`)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(x, w, stride=1, pad=None, groups=1, b=None):
        k = w.shape[0]
        pad = k // 2 if pad is None else pad
        y = lax.conv_general_dilated(
            x,
            w,
            (stride, stride),
            ((pad, pad), (pad, pad)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )
        return y if b is None else y + b

    def bn(x, p):
        return (x - p["mean"]) * lax.rsqrt(p["var"] + 1e-5) * p["weight"] + p["bias"]

    def linear(x, p):
        return x @ p["weight"] + p["bias"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) * lax.rsqrt(var + 1e-6) * p["weight"] + p["bias"]

    relu, relu6 = jax.nn.relu, jax.nn.relu6

    def resnet20(P, x):
        x = relu(bn(conv(x, P["stem.conv"]["weight"]), P["stem.bn"]))
        for stage, planes in ((1, 16), (2, 32), (3, 64)):
            for i in range(3):
                t, stride = f"layer{stage}.{i}", 2 if stage > 1 and i == 0 else 1
                y = relu(bn(conv(x, P[f"{t}.conv1"]["weight"], stride), P[f"{t}.bn1"]))
                y = bn(conv(y, P[f"{t}.conv2"]["weight"]), P[f"{t}.bn2"])
                if x.shape[-1] != planes:
                    p = (planes - x.shape[-1]) // 2
                    x = jnp.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (p, p)))
                x = relu(y + x)
        return linear(x.mean((1, 2)), P["head"])

    def mobilenet_v2(P, x):
        x = relu6(bn(conv(x, P["stem.conv"]["weight"]), P["stem.bn"]))
        for k, (cin, t, c, s) in enumerate(mobilenet_blocks()):
            tag, y = f"block{k}", x
            if t != 1:
                y = relu6(bn(conv(y, P[f"{tag}.expand"]["weight"]), P[f"{tag}.expand_bn"]))
            y = relu6(bn(conv(y, P[f"{tag}.dw"]["weight"], s, groups=cin * t), P[f"{tag}.dw_bn"]))
            y = bn(conv(y, P[f"{tag}.project"]["weight"]), P[f"{tag}.project_bn"])
            x = x + y if s == 1 and cin == c else y
        x = relu6(bn(conv(x, P["last.conv"]["weight"]), P["last.bn"]))
        return linear(x.mean((1, 2)), P["head"])

    def vit_tiny(P, x, dim=192, heads=3):
        x = conv(x, P["patch_embed"]["weight"], 4, 0, b=P["patch_embed"]["bias"])
        n = x.shape[0]
        x = x.reshape(n, -1, dim) + P["pos_embed"]["other"]
        hd = dim // heads
        for i in range(12):
            tag = f"block{i}"
            a = P[f"{tag}.attn"]
            y = ln(x, P[f"{tag}.ln1"])
            qkv = (y @ a["in_weight"] + a["in_bias"]).reshape(n, -1, 3, heads, hd)
            q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
            att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), axis=-1)
            y = (att @ v).transpose(0, 2, 1, 3).reshape(n, -1, dim)
            x = x + y @ a["out_weight"] + a["out_bias"]
            y = jax.nn.gelu(linear(ln(x, P[f"{tag}.ln2"]), P[f"{tag}.fc1"]), approximate=False)
            x = x + linear(y, P[f"{tag}.fc2"])
        return linear(ln(x, P["norm"]).mean(1), P["head"])

    def lstm(P, x):
        n = x.shape[0]
        seq = x.transpose(0, 1, 3, 2).reshape(n, 32, 96)  # NHWC -> rows of (C, W)
        p = P["lstm"]
        hidden = p["weight_hh"].shape[0]
        xs = seq @ p["weight_ih"] + p["bias"]  # all input projections at once

        def step(carry, z):
            h, c = carry
            i, f, g, o = jnp.split(z + h @ p["weight_hh"], 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        zero = jnp.zeros((n, hidden), x.dtype)
        (h, _), _ = lax.scan(step, (zero, zero), xs.transpose(1, 0, 2))
        return linear(h, P["head"])

    return {"resnet20": resnet20, "mobilenet_v2": mobilenet_v2, "vit_tiny": vit_tiny}.get(
        name, lstm
    )


def jax_params(spec: Any) -> dict[str, dict[str, np.ndarray]]:
    """The spec's weights in a JAX user's layouts: HWIO kernels, (in, out) matrices."""
    P = by_node(spec)
    out: dict[str, dict[str, np.ndarray]] = {}
    for node, p in P.items():
        q = dict(p)
        if "weight" in q and q["weight"].ndim == 4:
            q["weight"] = q["weight"].transpose(2, 3, 1, 0)
        elif "weight" in q and q["weight"].ndim == 2:
            q["weight"] = q["weight"].T
        for role in ("in_weight", "out_weight"):
            if role in q:
                q[role] = q[role].T
        if "weight_ih" in q:
            q = {
                "weight_ih": q["weight_ih"].T,
                "weight_hh": q["weight_hh"].T,
                "bias": q["bias_ih"] + q["bias_hh"],
            }
        out[node] = {k: np.ascontiguousarray(v) for k, v in q.items()}
    return out


def jax_contender(name: str, spec: Any) -> tuple[Callable, Callable, Any]:
    import jax

    params = jax.device_put(jax_params(spec))
    fn = jax.jit(jax_function(name))
    return (
        lambda a: jax.device_put(np.ascontiguousarray(a.transpose(0, 2, 3, 1))),
        lambda x: fn(params, x).block_until_ready(),
        lambda y: np.asarray(y),
    )


# -- the worker: one framework, every model and batch ------------------------------------------


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _round(call: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """Calls for ``seconds`` (at least one): the median call and minor faults per call."""
    times = []
    f0, start = _faults(), time.perf_counter()
    while not times or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (_faults() - f0) / len(times)


def contenders(fw: str, name: str, spec: Any, threads: int) -> tuple[Any, tuple]:
    import dlbench

    backend = dlbench.get_backend(fw, intra_op_threads=threads, inter_op_threads=1)
    model = backend.build(spec)
    if fw == "torch":
        hand = torch_contender(name, spec)
    elif fw == "tensorflow":
        hand = keras_contender(name, spec)
    elif fw == "jax":
        hand = jax_contender(name, spec)
    elif fw == "onnxruntime":
        hand = ort_contender(name, spec, threads)
    else:
        raise SystemExit(f"fidelity: unknown framework {fw!r}; expected one of {FRAMEWORKS}")
    return model, hand


def worker(fw: str, plan: list[tuple[str, list[int]]], args: argparse.Namespace) -> list[dict]:
    import dlbench
    from dlbench.execution.allocator import in_force

    rows = []
    for name, batches in plan:
        spec = dlbench.zoo.get(name)
        model, (prepare, call, to_numpy) = contenders(fw, name, spec, args.threads)
        for batch in batches:
            x = np.random.default_rng(batch).normal(size=(batch, *spec.inputs[0].shape[1:]))
            x = x.astype(np.float32)
            dx, hx = model.to_device(x), prepare(x)
            want = model.to_numpy(model.forward(dx))
            got = np.asarray(to_numpy(call(hx)))
            scale = max(1.0, float(np.abs(want).max()))
            diff = float(np.abs(got - want).max()) if got.shape == want.shape else math.inf
            if not diff <= args.tolerance * scale:
                raise Mismatch(
                    f"fidelity: {fw} {name} batch {batch}: the hand-written model's outputs "
                    f"differ from dlbench's by {diff:.3g} (scale {scale:.3g}, tolerance "
                    f"{args.tolerance}); not timing models that compute different things"
                )

            def run_dl(dx=dx, model=model):
                model.sync(model.forward(dx))

            def run_hand(hx=hx, call=call):
                call(hx)

            for _ in range(2):  # warm-up
                run_dl()
                run_hand()
            dl_t, hand_t, dl_f, hand_f = [], [], [], []
            for r in range(args.rounds):
                order = ((run_dl, dl_t, dl_f), (run_hand, hand_t, hand_f))
                for fn, ts, fs in order if r % 2 == 0 else order[::-1]:
                    t, f = _round(fn, args.round_time)
                    ts.append(t)
                    fs.append(f)
            dl, hand = statistics.median(dl_t), statistics.median(hand_t)
            rows.append(
                {
                    "framework": fw,
                    "model": name,
                    "batch": batch,
                    "dlbench_s": dl,
                    "hand_s": hand,
                    # paired by round: load that drifts between rounds cancels
                    "ratio": statistics.median(a / b for a, b in zip(dl_t, hand_t)),
                    "ratio_of_medians": dl / hand,
                    "round_ratios": [a / b for a, b in zip(dl_t, hand_t)],
                    "dlbench_faults_per_call": statistics.median(dl_f),
                    "hand_faults_per_call": statistics.median(hand_f),
                    "max_abs_diff": diff,
                    "allocator": in_force()["name"],
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


# -- the parent --------------------------------------------------------------------------------


def plan_of(args: argparse.Namespace) -> list[tuple[str, list[int]]]:
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in DEFAULT_BATCHES:
            raise SystemExit(f"fidelity: no hand-written {m!r}; expected some of {list(MODELS)}")
    if args.batches:
        batches = [int(b) for b in args.batches.split(",") if b]
        return [(m, batches) for m in models]
    return [(m, list(DEFAULT_BATCHES[m])) for m in models]


def table(rows: list[dict], frameworks: list[str]) -> str:
    cells = {(r["model"], r["batch"], r["framework"]): r for r in rows}
    keys = sorted(
        {(r["model"], r["batch"]) for r in rows}, key=lambda k: (MODELS.index(k[0]), k[1])
    )
    head = "| model | batch | " + " | ".join(f"{fw} (dlbench / hand, ms)" for fw in frameworks)
    lines = [head + " |", "|---|---:|" + "---:|" * len(frameworks)]
    for model, batch in keys:
        parts = []
        for fw in frameworks:
            r = cells.get((model, batch, fw))
            if r is None:
                parts.append("-")
                continue
            mark = "" if r["ratio"] <= 1.05 else " **>1.05**"
            parts.append(
                f"{r['ratio']:.2f}{mark} ({r['dlbench_s'] * 1e3:.2f} / {r['hand_s'] * 1e3:.2f})"
            )
        lines.append(f"| {model} | {batch} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batches", default="", help="e.g. 1,32,256 (default: per model)")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--round-time", type=float, default=0.25, help="seconds per contender per round")
    p.add_argument("--tolerance", type=float, default=1e-4, help="relative to the output scale")
    p.add_argument("--allocator", default="tuned", choices=("tuned", "system"))
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    plan = plan_of(args)
    if args.worker:
        print(json.dumps(worker(args.worker, plan, args)))
        return 0

    from dlbench.execution import allocator
    from dlbench.execution.runner import thread_env

    frameworks = [f for f in args.frameworks.split(",") if f]
    rows: list[dict] = []
    failed: dict[str, str] = {}
    started = time.time()
    for fw in frameworks:
        names = [fw, "torch"] if fw == "onnxruntime" else [fw]
        env = {**os.environ, **thread_env(args.threads, 1, names)}
        env = allocator.worker_env(env, args.allocator)
        cmd = [sys.executable, __file__, "--worker", fw, *(argv or sys.argv[1:])]
        print(f"# {fw}: running ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            failed[fw] = f"exit {proc.returncode} (its stderr is above)"
            continue
        rows.extend(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        f"\nFidelity: dlbench / hand-written, median of {args.rounds} alternating rounds, "
        f"{args.threads} thread(s), allocator {args.allocator} "
        f"({time.time() - started:.0f} s; command: python benchmarks/fidelity.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])})\n"
    )
    print(table(rows, frameworks))
    over = [r for r in rows if r["ratio"] > 1.05]
    print(f"\n{len(rows) - len(over)}/{len(rows)} ratios <= 1.05.")
    for r in rows:
        if r["dlbench_faults_per_call"] > max(100.0, 10 * r["hand_faults_per_call"]):
            print(
                f"note: {r['framework']} {r['model']} batch {r['batch']}: "
                f"{r['dlbench_faults_per_call']:,.0f} page faults per call in dlbench's build, "
                f"{r['hand_faults_per_call']:,.0f} hand-written"
            )
    for fw, why in failed.items():
        print(f"{fw}: failed: {why}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "rows": rows, "failed": failed}, fh, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
