"""The ImageNet-size zoo (dlbench.model.zoo.imagenet): torchvision's parameter counts, and outputs
equal to an independent implementation (Hugging Face ``transformers``, built from its config in
PyTorch with random weights) after importing its weights.

Each transformers model is configured to be torchvision's architecture: batch-norm eps 1e-5
(transformers' MobileNetV2/EfficientNet default to TensorFlow's 1e-3), layer-norm eps 1e-6
(transformers' ViT/ConvNeXt final norms default to 1e-12), symmetric padding of the stride-2
convs (transformers' MobileNetV2 ``tf_padding=False``; EfficientNet: ``depthwise_padding`` on
every block and the stem's (0, 1, 0, 1) zero padding made (1, 1, 1, 1): TensorFlow pads
asymmetrically, torchvision does not). Its weights (all of them, including the batch-norm
statistics and layer scales, randomised so no layer is an identity) are mapped to torchvision's
names by one function per model and loaded with ``imagenet.load_torchvision``.

The default selection builds small configurations (a few layers, 32x32 or 64x64 inputs); the
full-size models at 224x224 are ``slow``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlbench import get_backend, zoo
from dlbench.analysis.parity import compare
from dlbench.errors import ConfigError
from dlbench.model.zoo import imagenet

NAMES = list(imagenet.TORCHVISION_PARAMS)


# -- parameter counts (no weights drawn) ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_param_counts_equal_torchvision(name):
    spec = zoo.get(name, weights="zeros")  # 1000 classes by default for these models
    stats = spec.stats()
    assert stats["params"] == imagenet.TORCHVISION_PARAMS[name]
    assert spec.input_shape == (3, 224, 224) and spec.output_shape == (1000,)
    assert stats["macs"] > 0 and stats["flops"] > 2 * stats["macs"]
    assert spec.metadata["preprocessing"]["crop"] == 224


def test_macs_match_published_gflops():
    # torchvision's documented GFLOPS (multiply-accumulates, in fact): 4.09, 0.30, 0.39, 17.56, 4.46
    published = {
        "resnet50": 4.09,
        "mobilenet_v2_224": 0.30,
        "efficientnet_b0": 0.39,
        "vit_b_16": 17.56,
        "convnext_tiny": 4.46,
    }
    for name, gmacs in published.items():
        macs = zoo.get(name, weights="zeros").stats()["macs"]
        assert abs(macs / 1e9 - gmacs) < 0.01, (name, macs)


def test_defaults_and_options():
    assert zoo.get("resnet20").num_classes == 10  # the CIFAR models keep 10 classes
    assert zoo.get("resnet50", num_classes=7, weights="zeros").output_shape == (7,)
    from dlbench.model.zoo import _count, _lazy_options

    assert _lazy_options("vit_b_16") == {"weights": "zeros"} and _lazy_options("mlp") == {}
    assert _count("vit_b_16") == 86_567_656  # what describe() lists, without drawing weights
    with pytest.raises(ConfigError, match="weights"):
        zoo.get("resnet50", weights="pretrained")
    with pytest.raises(ConfigError, match="multiples of the patch size"):
        zoo.get("vit_b_16", input_shape=(3, 100, 100), weights="zeros")
    with pytest.raises(ConfigError, match="depths"):
        zoo.get("convnext_tiny", depths=(1, 1), weights="zeros")


def test_random_weights_are_seeded_and_float32():
    a = imagenet.resnet50(input_shape=(3, 32, 32), layers=(1, 1, 1, 1), width=8, seed=3)
    b = imagenet.resnet50(input_shape=(3, 32, 32), layers=(1, 1, 1, 1), width=8, seed=3)
    c = imagenet.resnet50(input_shape=(3, 32, 32), layers=(1, 1, 1, 1), width=8, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert all(p.dtype == np.float32 for p in a.params.values())


# -- weight mapping: transformers -> torchvision names ----------------------------------------------


def _randomise(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Every tensor of ``model`` drawn afresh (batch-norm statistics and affine terms, layer norms,
    layer scales included), loaded back into it; returned as numpy arrays by transformers name."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if not v.is_floating_point():
            continue
        if k.endswith("running_var"):
            new = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("running_mean"):
            new = 0.1 * torch.randn(v.shape, generator=g)
        elif v.ndim == 1 and ("norm" in k or "bn" in k) and k.endswith("weight"):
            new = 0.8 + 0.4 * torch.rand(v.shape, generator=g)
        elif v.ndim == 1 and "layer_scale" in k:
            new = 0.05 + 0.15 * torch.rand(v.shape, generator=g)
        elif v.ndim <= 1 or "token" in k or "position" in k:
            new = 0.1 * torch.randn(v.shape, generator=g)
        else:
            continue  # transformers' own (fan-in scaled) initialisation of conv/linear weights
        sd[k] = new.to(v.dtype)
    model.load_state_dict(sd)
    model.eval()
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _rename(sd: dict[str, np.ndarray], rules: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        new = k
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        assert new not in out, f"two tensors map to {new}"
        out[new] = v
    return out


def _stages(pattern: str, fmt) -> tuple[str, object]:
    return pattern, lambda m: fmt(*(int(g) for g in m.groups()))


def map_resnet(sd):
    """transformers ResNetForImageClassification -> torchvision resnet names."""
    rules = [
        (r"^resnet\.embedder\.embedder\.convolution", "conv1"),
        (r"^resnet\.embedder\.embedder\.normalization", "bn1"),
        _stages(
            r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution",
            lambda s, i: f"layer{s + 1}.{i}.downsample.0",
        ),
        _stages(
            r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization",
            lambda s, i: f"layer{s + 1}.{i}.downsample.1",
        ),
        _stages(
            r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution",
            lambda s, i, j: f"layer{s + 1}.{i}.conv{j + 1}",
        ),
        _stages(
            r"^resnet\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization",
            lambda s, i, j: f"layer{s + 1}.{i}.bn{j + 1}",
        ),
        (r"^classifier\.1", "fc"),
    ]
    return _rename(sd, rules)


def map_by_order(spec):
    """transformers MobileNetV2 / EfficientNet -> torchvision names: both define their layers in
    the same order (conv, then its batch norm's weight, bias, mean, var; SE reduce before
    expand; classifier last), so the i-th tensor is the i-th spec parameter."""

    def mapping(sd):
        tensors = [v for k, v in sd.items() if not k.endswith("num_batches_tracked")]
        names = list(spec.params)
        assert len(tensors) == len(names), (len(tensors), len(names))
        out = {}
        for name, v in zip(names, tensors):
            assert v.size == spec.params[name].size, (name, v.shape, spec.params[name].shape)
            out[imagenet.torchvision_key(name)] = v
        return out

    return mapping


def map_vit(sd):
    """transformers ViTForImageClassification -> torchvision vit names (q, k, v stacked)."""
    out = _rename(
        {k: v for k, v in sd.items() if not re.search(r"attention\.[qkv]_proj", k)},
        [
            (r"^vit\.embeddings\.cls_token", "class_token"),
            (r"^vit\.embeddings\.position_embeddings", "encoder.pos_embedding"),
            (r"^vit\.embeddings\.patch_embeddings\.projection", "conv_proj"),
            (r"^vit\.layers\.(\d+)\.", r"encoder.layers.encoder_layer_\1."),
            (r"attention\.o_proj", "self_attention.out_proj"),
            (r"layernorm_before", "ln_1"),
            (r"layernorm_after", "ln_2"),
            (r"mlp\.fc1", "mlp.0"),
            (r"mlp\.fc2", "mlp.3"),
            (r"^vit\.layernorm", "encoder.ln"),
            (r"^classifier", "heads.head"),
        ],
    )
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"^vit\.layers\.(\d+)\.", k))}
    for i in layers:
        for kind in ("weight", "bias"):
            qkv = [sd[f"vit.layers.{i}.attention.{p}_proj.{kind}"] for p in "qkv"]
            out[f"encoder.layers.encoder_layer_{i}.self_attention.in_proj_{kind}"] = np.concatenate(
                qkv
            )
    return out


def map_convnext(sd):
    """transformers ConvNextForImageClassification -> torchvision convnext names."""
    return _rename(
        sd,
        [
            (r"^classifier\.", "classifier.2."),  # first: the next rule makes classifier.0
            (r"^convnext\.layernorm", "classifier.0"),
            (r"^convnext\.embeddings\.patch_embeddings", "features.0.0"),
            (r"^convnext\.embeddings\.layernorm", "features.0.1"),
            _stages(
                r"^convnext\.encoder\.stages\.(\d+)\.downsampling_layer\.(\d+)",
                lambda s, j: f"features.{2 * s}.{j}",
            ),
            _stages(
                r"^convnext\.encoder\.stages\.(\d+)\.layers\.(\d+)\.",
                lambda s, i: f"features.{2 * s + 1}.{i}.",
            ),
            (r"\.layer_scale_parameter$", ".layer_scale"),
            (r"\.dwconv\.", ".block.0."),
            (r"\.layernorm\.", ".block.2."),
            (r"\.pwconv1\.", ".block.3."),
            (r"\.pwconv2\.", ".block.5."),
        ],
    )


# -- the independent models, small and full size ----------------------------------------------------

SMALL = {
    "resnet50": {"input_shape": (3, 32, 32), "layers": (1, 2, 1, 1), "width": 16},
    "mobilenet_v2_224": {"input_shape": (3, 32, 32)},
    "efficientnet_b0": {"input_shape": (3, 32, 32)},
    "vit_b_16": {
        "input_shape": (3, 32, 32),
        "patch": 8,
        "dim": 64,
        "depth": 2,
        "heads": 4,
        "mlp_dim": 128,
    },
    "convnext_tiny": {"input_shape": (3, 32, 32), "depths": (1, 2, 1, 1), "dims": (16, 32, 48, 64)},
}


def _hf_model(name: str, num_classes: int, opts: dict):
    transformers = pytest.importorskip("transformers")
    import torch

    size = opts.get("input_shape", (3, 224, 224))[1]
    torch.manual_seed(0)  # transformers' own initialisation of the conv/linear weights
    if name == "resnet50":
        layers, width = opts.get("layers", (3, 4, 6, 3)), opts.get("width", 64)
        cfg = transformers.ResNetConfig(
            num_labels=num_classes,
            layer_type="bottleneck",
            depths=list(layers),
            embedding_size=width,
            hidden_sizes=[4 * width * 2**s for s in range(len(layers))],
            downsample_in_first_stage=False,
            downsample_in_bottleneck=False,
        )
        return transformers.ResNetForImageClassification(cfg), map_resnet
    if name == "mobilenet_v2_224":
        cfg = transformers.MobileNetV2Config(
            num_labels=num_classes, tf_padding=False, layer_norm_eps=1e-5, image_size=size
        )
        return transformers.MobileNetV2ForImageClassification(cfg), None
    if name == "efficientnet_b0":
        cfg = transformers.EfficientNetConfig(
            num_labels=num_classes,
            width_coefficient=1.0,
            depth_coefficient=1.0,
            hidden_dim=1280,
            image_size=size,
            batch_norm_eps=1e-5,
            depthwise_padding=list(range(16)),  # symmetric k//2 padding in every block
        )
        model = transformers.EfficientNetForImageClassification(cfg)
        model.efficientnet.embeddings.padding = torch.nn.ZeroPad2d(1)  # torchvision's stem
        return model, None
    if name == "vit_b_16":
        cfg = transformers.ViTConfig(
            num_labels=num_classes,
            image_size=size,
            patch_size=opts.get("patch", 16),
            hidden_size=opts.get("dim", 768),
            num_hidden_layers=opts.get("depth", 12),
            num_attention_heads=opts.get("heads", 12),
            intermediate_size=opts.get("mlp_dim", 3072),
            hidden_act="gelu",
            layer_norm_eps=1e-6,
            qkv_bias=True,
        )
        return transformers.ViTForImageClassification(cfg), map_vit
    cfg = transformers.ConvNextConfig(
        num_labels=num_classes,
        depths=list(opts.get("depths", (3, 3, 9, 3))),
        hidden_sizes=list(opts.get("dims", (96, 192, 384, 768))),
        layer_norm_eps=1e-6,
    )
    return transformers.ConvNextForImageClassification(cfg), map_convnext


def _check_equal(name: str, num_classes: int, opts: dict, batch: int = 2) -> dict:
    import torch

    model, mapping = _hf_model(name, num_classes, opts)
    sd = _randomise(model, seed=1)
    spec = zoo.get(name, num_classes=num_classes, **opts)
    mapping = mapping or map_by_order(spec)
    loaded = imagenet.load_torchvision(spec, mapping(sd))
    x = np.random.default_rng(0).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(pixel_values=torch.from_numpy(x)).logits.numpy()
    got = get_backend("numpy").build(loaded).predict(x)
    result = compare(expected, got, tolerance=1e-4)
    assert result["max_abs_diff"] <= 1e-4 * result["output_scale"], result
    assert result["argmax_agreement_strict"] == 1.0, result
    return result


@pytest.mark.parametrize("name", NAMES)
def test_small_config_equals_transformers(name):
    _check_equal(name, 10, SMALL[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_size_equals_transformers(name):
    _check_equal(name, 1000, {}, batch=1)


def test_a_wrong_mapping_is_caught():
    """The check is not vacuous: swapping q and k in the attention, or loading batch norms with
    TensorFlow's eps, changes the outputs beyond the bound."""
    import torch

    opts = SMALL["vit_b_16"]
    model, _ = _hf_model("vit_b_16", 10, opts)
    sd = _randomise(model, seed=1)
    spec = zoo.get("vit_b_16", num_classes=10, **opts)
    mapped = map_vit(sd)
    key = "encoder.layers.encoder_layer_0.self_attention.in_proj_weight"
    q, k, v = np.split(mapped[key], 3)
    mapped[key] = np.concatenate([k, q, v])
    bad = imagenet.load_torchvision(spec, mapped)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(pixel_values=torch.from_numpy(x)).logits.numpy()
    got = get_backend("numpy").build(bad).predict(x)
    assert not compare(expected, got, tolerance=1e-4)["ok"]


def test_load_torchvision_rejects_a_state_dict_that_does_not_fit():
    spec = imagenet.resnet50(input_shape=(3, 32, 32), layers=(1, 1, 1, 1), width=8)
    sd = {imagenet.torchvision_key(k): v for k, v in spec.params.items()}
    assert imagenet.load_torchvision(spec, sd).fingerprint() == spec.fingerprint()
    missing = dict(sd)
    del missing["layer1.0.bn1.running_var"]
    with pytest.raises(ConfigError, match="1 missing: layer1.0.bn1.running_var"):
        imagenet.load_torchvision(spec, missing)
    extra = {**sd, "layer5.0.conv1.weight": np.zeros(3)}
    with pytest.raises(ConfigError, match="1 unused: layer5.0.conv1.weight"):
        imagenet.load_torchvision(spec, extra)
    wrong = {**sd, "fc.weight": np.zeros((10, 3))}
    with pytest.raises(ConfigError, match="wrong size: fc.weight"):
        imagenet.load_torchvision(spec, wrong)
    assert imagenet.torchvision_key("class_token.other") == "class_token"
    assert (
        imagenet.torchvision_key("encoder.layers.encoder_layer_0.self_attention.out_weight")
        == "encoder.layers.encoder_layer_0.self_attention.out_proj.weight"
    )


@pytest.mark.slow  # every framework's import and compile: minutes of CPU
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "onnxruntime"])
def test_small_configs_on_every_backend(backend):
    """Each model (small configuration) built by every backend agrees with the float64
    reference (the 224x224 models run in the conformance suite's slow selection)."""
    from dlbench.registry import backends as registry

    message = registry.entry(backend).missing_message()
    if message:
        pytest.skip(message)
    b = get_backend(backend)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    for name, opts in SMALL.items():
        spec = zoo.get(name, num_classes=10, **opts)
        ref = get_backend("numpy").build(spec).predict(x)
        rec = compare(ref, b.build(spec, "cpu").predict(x), tolerance=1e-4)
        assert rec["ok"], (backend, name, rec)
