"""Networks from other libraries, exported to ONNX, for the import coverage tests and table.

Each :class:`Source` builds one network with random weights in its own framework
(``keras.applications``, Hugging Face ``transformers`` in PyTorch, Flax), exports it to ONNX
with that framework's exporter (tf2onnx, ``torch.onnx``, jax2onnx) and returns the ONNX model,
a fixed input batch and the source framework's own output on it. Nothing is downloaded; the
frameworks are imported lazily (only the chosen source's). Used by
``tests/onnx_import/test_coverage.py`` (as ``onnx_import_sources``) and
``benchmarks/onnx_coverage.py``; it lives with the tests because the core names no framework.
``small`` builds a tiny configuration (tiny widths, 32x32 or 64x64 inputs) for the default test
selection; ``small=False`` the real architecture at its real input size (slow).

Example:
    >>> from onnx_import_sources import SOURCES
    >>> src = SOURCES["hf_vit"].build(small=True)  # doctest: +SKIP
    >>> src.model.graph.input[0].name  # doctest: +SKIP
    'pixel_values'
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: batch exported and compared (small enough for the float64 reference on the big models)
BATCH = 2


@dataclass
class Built:
    """An exported network: the ONNX model, an input batch and the source framework's output."""

    model: Any
    x: np.ndarray
    want: np.ndarray


@dataclass(frozen=True)
class Source:
    """One network of the coverage table: its framework, exporter and builder."""

    name: str
    framework: str  # keras | transformers | flax
    exporter: str  # tf2onnx | torch.onnx | jax2onnx
    needs: tuple[str, ...]
    make: Callable[[bool], Built]

    def build(self, small: bool = True) -> Built:
        return self.make(small)


def _batch(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((BATCH, *shape)).astype(np.float32)


# -- keras.applications via tf2onnx ------------------------------------------------------------

#: application -> (full input size, small input size); Xception needs at least 71x71.
#: RegNetX002 is only in Keras 2 (``tf_keras``); Keras 3 dropped the RegNets.
_KERAS = {
    "ResNet50": (224, 32),
    "MobileNetV2": (224, 32),
    "MobileNetV3Small": (224, 32),
    "EfficientNetB0": (224, 32),
    "DenseNet121": (224, 32),
    "ConvNeXtTiny": (224, 32),
    "RegNetX002": (224, 32),
    "Xception": (299, 71),
}


def _keras(app: str) -> Callable[[bool], Built]:
    def make(small: bool) -> Built:
        import tensorflow as tf
        import tf2onnx

        if app in _KERAS2_ONLY:
            import tf_keras as keras
        else:
            import keras

        size = _KERAS[app][1 if small else 0]
        keras.utils.set_random_seed(0)
        kwargs: dict[str, Any] = {
            "weights": None,
            "input_shape": (size, size, 3),
            "classes": 10 if small else 1000,
            "classifier_activation": None,
        }
        if app.startswith("MobileNetV3"):
            kwargs["include_preprocessing"] = True
        model = getattr(keras.applications, app)(**kwargs)
        _randomize_batch_norm(model, keras, (size, size, 3))
        # ConvNeXt's Dense layers on NHWC maps reshape to (N*H*W, C) with int32 shape
        # arithmetic that a free batch cannot fold: export it at the batch size compared
        batch = BATCH if app in _FIXED_BATCH else None
        sig = (tf.TensorSpec((batch, size, size, 3), tf.float32, name="input"),)
        with _grouped_conv_without_xla():
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=17)
        x = _batch((size, size, 3))
        return Built(proto, x, np.asarray(model(x, training=False)))

    return make


_KERAS2_ONLY = {"RegNetX002"}
_FIXED_BATCH = {"ConvNeXtTiny"}


@contextlib.contextmanager
def _grouped_conv_without_xla() -> Iterator[None]:
    """Keras (3 and 2) runs grouped convolutions (ConvNeXt's depthwise 7x7, RegNet's group
    convs) inside ``tf.function(jit_compile=True)`` because TensorFlow's CPU kernel lacks them;
    tf2onnx cannot inline such a call (it stays a ``StatefulPartitionedCall``). While exporting,
    trace the plain grouped ``Conv2D`` instead: the same computation, which ONNX has as
    ``Conv(group=g)``. Likewise Keras 3's exact GELU is traced as ``0.5 x (1 + erf(x / sqrt 2))``
    (TensorFlow's own uses Erfc, which tf2onnx exports as an op ONNX does not have). The
    reference output is computed outside, by the unpatched model."""
    import tensorflow as tf

    undo: list[tuple[Any, str, Any]] = []
    try:
        from keras.src.backend.tensorflow import nn as k3

        plain = k3.conv

        def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
            fmt = k3._convert_data_format(
                k3.backend.standardize_data_format(data_format), len(inputs.shape)
            )
            return tf.nn.convolution(
                inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate
            )

        def gelu(x, approximate=True):
            # tf.nn.gelu's exact form uses Erfc, which tf2onnx writes as an op ONNX lacks
            if approximate:
                return tf.nn.gelu(x, approximate=True)
            return 0.5 * x * (1.0 + tf.math.erf(x / np.sqrt(2.0).astype(np.float32)))

        undo += [(k3, "conv", plain), (k3, "gelu", k3.gelu)]
        k3.conv, k3.gelu = conv, gelu
    except ImportError:  # pragma: no cover
        pass
    try:
        from tf_keras.src.layers.convolutional.base_conv import Conv as K2Conv

        undo.append((K2Conv, "_jit_compiled_convolution_op", K2Conv._jit_compiled_convolution_op))
        K2Conv._jit_compiled_convolution_op = lambda self, x, k: self.convolution_op(x, k)
    except ImportError:
        pass
    try:
        yield
    finally:
        for owner, name, value in undo:
            setattr(owner, name, value)


def _randomize_batch_norm(model: Any, keras: Any, shape: tuple[int, ...]) -> None:
    """Batch-norm statistics measured on a random calibration batch (one training-mode call
    with momentum 0). Fresh layers have mean 0 and variance 1, with which the random convs'
    growing activations saturate every ReLU6 of a MobileNet: each sample then gets the same
    logits, and parity could not tell a right output from a wrong one."""
    layers = [
        la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)
    ]
    momenta = [la.momentum for la in layers]
    for la in layers:
        la.momentum = 0.0
    calibration = np.random.default_rng(1).standard_normal((8, *shape)).astype(np.float32)
    model(calibration, training=True)
    for la, m in zip(layers, momenta):
        la.momentum = m


# -- transformers (PyTorch) via torch.onnx -----------------------------------------------------


def _torch_export(module: Any, x: np.ndarray, input_name: str, dynamo: bool = False) -> Any:
    import onnx
    import torch

    module.eval()
    xt = torch.from_numpy(x)
    buf = io.BytesIO()
    with torch.no_grad():
        if dynamo:
            # the torch.export-based exporter (torch.onnx.export's default) with a fixed batch:
            # GPT-2's causal mask is built from arange(batch), which a free batch cannot fold
            program = torch.onnx.export(
                module,
                (xt,),
                input_names=[input_name],
                output_names=["logits"],
                opset_version=18,
                dynamo=True,
            )
            return program.model_proto
        torch.onnx.export(
            module,
            (xt,),
            buf,
            input_names=[input_name],
            output_names=["logits"],
            dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


class _Logits:
    """Wrap a transformers model so it returns a plain logits tensor."""

    @staticmethod
    def wrap(model: Any, key: str = "logits") -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x):
                return getattr(self.model(x), key)

        return Wrapped()


def _hf_vision(kind: str) -> Callable[[bool], Built]:
    def make(small: bool) -> Built:
        import torch
        import transformers as tr

        torch.manual_seed(0)
        size = 224
        if kind == "vit":
            cfg = (
                tr.ViTConfig(
                    image_size=32,
                    patch_size=8,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=64,
                    num_labels=10,
                )
                if small
                else tr.ViTConfig(num_labels=1000)
            )
            size, model = cfg.image_size, tr.ViTForImageClassification(cfg)
        elif kind == "convnext":
            cfg = (
                tr.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=10)
                if small
                else tr.ConvNextConfig(num_labels=1000)
            )
            size, model = (32 if small else 224), tr.ConvNextForImageClassification(cfg)
        elif kind == "swin":
            cfg = (
                tr.SwinConfig(
                    image_size=32,
                    patch_size=2,
                    embed_dim=16,
                    depths=[1, 1],
                    num_heads=[2, 2],
                    window_size=4,
                    num_labels=10,
                )
                if small
                else tr.SwinConfig(num_labels=1000)
            )
            size, model = cfg.image_size, tr.SwinForImageClassification(cfg)
        elif kind == "resnet":
            cfg = (
                tr.ResNetConfig(
                    embedding_size=8,
                    hidden_sizes=[8, 16, 24, 32],
                    depths=[1, 1, 1, 1],
                    layer_type="basic",
                    num_labels=10,
                )
                if small
                else tr.ResNetConfig(num_labels=1000)
            )
            size, model = (32 if small else 224), tr.ResNetForImageClassification(cfg)
        elif kind == "mobilevit":
            cfg = (
                tr.MobileViTConfig(
                    image_size=64,
                    hidden_sizes=[16, 24, 32],
                    neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                    num_attention_heads=2,
                    num_labels=10,
                )
                if small
                else tr.MobileViTConfig(num_labels=1000)
            )
            size, model = cfg.image_size, tr.MobileViTForImageClassification(cfg)
            # transformers' std-0.02 init fades the signal to a constant in this tiny
            # configuration (every sample gets the same logits: parity could not inform);
            # PyTorch's default init keeps it
            for m in model.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                    m.reset_parameters()
            _calibrate_torch_norms(model, (3, cfg.image_size, cfg.image_size))
        else:  # pragma: no cover
            raise ValueError(kind)
        if kind != "mobilevit":  # calibrated above
            _randomize_torch_norms(model)
        model.eval()
        x = _batch((3, size, size))
        wrapped = _Logits.wrap(model)
        with torch.no_grad():
            want = wrapped(torch.from_numpy(x)).numpy()
        return Built(_torch_export(wrapped, x, "pixel_values"), x, want)

    return make


def _calibrate_torch_norms(model: Any, shape: tuple[int, ...]) -> None:
    """Batch-norm statistics measured on a random calibration batch (cumulative average)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    calibration = np.random.default_rng(1).standard_normal((8, *shape)).astype(np.float32)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(calibration))
    model.eval()


def _randomize_torch_norms(model: Any) -> None:
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def _hf_text(kind: str) -> Callable[[bool], Built]:
    """A BERT-style encoder or a GPT-2-style decoder on int64 token ids (``input_ids``, fixed
    length): the word-embedding lookup is an ONNX Gather, imported as an ``embedding``."""

    def make(small: bool) -> Built:
        import torch
        import transformers as tr

        torch.manual_seed(0)
        if kind == "bert":
            cfg = (
                tr.BertConfig(
                    vocab_size=64,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=64,
                    max_position_embeddings=32,
                    num_labels=5,
                )
                if small
                else tr.BertConfig(num_labels=2)
            )
            model = tr.BertForSequenceClassification(cfg)
            seq = 16 if small else 128
        elif kind == "gpt2":
            cfg = (
                tr.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)
                if small
                else tr.GPT2Config()
            )
            model = tr.GPT2LMHeadModel(cfg)
            seq = 16 if small else 128
        else:  # pragma: no cover
            raise ValueError(kind)
        model.config.use_cache = False
        model.eval()
        x = np.random.default_rng(0).integers(0, cfg.vocab_size, (BATCH, seq), dtype=np.int64)
        wrapped = _Logits.wrap(model)
        with torch.no_grad():
            want = wrapped(torch.from_numpy(x)).numpy()
        return Built(_torch_export(wrapped, x, "input_ids", dynamo=kind == "gpt2"), x, want)

    return make


# -- Flax via jax2onnx -------------------------------------------------------------------------


def _flax_cnn(small: bool) -> Built:
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    size = 32 if small else 224
    width = 16 if small else 64

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv1 = nnx.Conv(3, width, (3, 3), rngs=rngs)
            self.norm = nnx.LayerNorm(width, rngs=rngs)
            self.conv2 = nnx.Conv(width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)
            self.head = nnx.Linear(2 * width, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.gelu(self.norm(self.conv1(x)))
            x = nnx.relu(self.conv2(x))
            x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
            return self.head(jnp.mean(x, axis=(1, 2)))

    model = CNN(nnx.Rngs(0))
    x = _batch((size, size, 3))
    proto = to_onnx(model, [("B", size, size, 3)], opset=18)  # its ReduceMean needs 18
    want = np.asarray(jax.device_get(model(jnp.asarray(x))))
    return Built(proto, x, want)


SOURCES: dict[str, Source] = {}


def _register(src: Source) -> None:
    SOURCES[src.name] = src


for _app in _KERAS:
    _register(
        Source(
            f"keras_{_app.lower()}",
            "keras",
            "tf2onnx",
            ("tensorflow", "tf_keras" if _app in _KERAS2_ONLY else "keras", "tf2onnx"),
            _keras(_app),
        )
    )
for _kind in ("vit", "convnext", "swin", "resnet", "mobilevit"):
    _register(
        Source(
            f"hf_{_kind}",
            "transformers",
            "torch.onnx",
            ("torch", "transformers", "onnxscript"),
            _hf_vision(_kind),
        )
    )
for _kind in ("bert", "gpt2"):
    _register(
        Source(
            f"hf_{_kind}",
            "transformers",
            "torch.onnx",
            ("torch", "transformers", "onnxscript"),
            _hf_text(_kind),
        )
    )
_register(Source("flax_cnn", "flax", "jax2onnx", ("jax", "flax", "jax2onnx"), _flax_cnn))


#: the five backends of the coverage table (torch first: it must load before tensorflow)
BACKENDS = ("torch", "tensorflow", "jax", "onnxruntime", "numpy")


def coverage(name: str, small: bool = True, backends: tuple[str, ...] = BACKENDS) -> dict:
    """Build source ``name``, import its ONNX file and check parity on every backend.

    Returns ``{"spec", "source"` (the source framework's output against the float64 reference:
    a :func:`~dlbench.analysis.parity.compare` record), ``"records"`` (one parity record per
    backend, against the same reference), ``"seconds"``}``.
    """
    import time

    from dlbench.analysis.parity import check, compare
    from dlbench.model.backend import get_backend
    from dlbench.spec import from_onnx

    t0 = time.perf_counter()
    built = SOURCES[name].build(small)
    spec = from_onnx(built.model, name=name)
    ref = get_backend("numpy").build(spec).predict(built.x)
    source = compare(ref, built.want)
    records = check(spec, list(backends), batch=built.x)
    return {
        "spec": spec,
        "source": source,
        "records": records,
        "seconds": time.perf_counter() - t0,
    }
