"""Vision Transformer (Dosovitskiy et al. 2021), ViT-Tiny with 4x4 patches for 32x32 images."""

from __future__ import annotations

from dlbench.model.spec import ModelSpec
from dlbench.model.zoo.builder import GraphBuilder
from dlbench.model.zoo.classic import _finish


def self_attention(b: GraphBuilder, x: str, dim: int, heads: int, name: str) -> str:
    """One multi-head self-attention node with Xavier projections and N(0, 0.02) biases."""
    return b.add(
        "multi_head_attention",
        [x],
        {"num_heads": heads},
        {
            "in_weight": b.xavier((3 * dim, dim)),
            "in_bias": b.rng.normal(0, 0.02, 3 * dim),
            "out_weight": b.xavier((dim, dim)),
            "out_bias": b.rng.normal(0, 0.02, dim),
        },
        name=name,
    )


def vit_tiny(
    num_classes: int = 10,
    input_shape=None,
    seed: int = 0,
    softmax: bool = False,
    patch: int = 4,
    dim: int = 192,
    depth: int = 12,
    heads: int = 3,
    mlp_ratio: int = 4,
) -> ModelSpec:
    """ViT-Tiny: 4x4 patch embedding, learned position embedding, 12 pre-norm blocks of
    3-head self-attention and a GELU MLP, final layer norm, mean pooling over tokens (no class
    token), linear head. Default input ``(3, 32, 32)`` (64 tokens): 5,362,378 parameters.
    """
    shape = tuple(input_shape or (3, 32, 32))
    b = GraphBuilder("vit_tiny", shape, seed)
    x = b.conv(b.input, dim, patch, stride=patch, padding=0, bias=True, name="patch_embed")
    c, h, w = b.shape(x)
    x = b.add("reshape", [x], {"shape": [dim, h * w]}, name="tokens")
    x = b.add("transpose", [x], {"perm": [0, 2, 1]}, name="tokens_t")
    x = b.add("add", [x], {}, {"other": b.rng.normal(0, 0.02, (h * w, dim))}, name="pos_embed")
    for i in range(depth):
        tag = f"block{i}"
        y = b.ln(x, name=f"{tag}.ln1")
        y = self_attention(b, y, dim, heads, name=f"{tag}.attn")
        x = b.add("add", [x, y], name=f"{tag}.add1")
        y = b.ln(x, name=f"{tag}.ln2")
        y = b.dense(y, dim * mlp_ratio, init="xavier", name=f"{tag}.fc1")
        y = b.act(y, "gelu", name=f"{tag}.gelu")
        y = b.dense(y, dim, init="xavier", name=f"{tag}.fc2")
        x = b.add("add", [x, y], name=f"{tag}.add2")
    x = b.ln(x, name="norm")
    x = b.add("reduce_mean", [x], {"axes": [1]}, name="pool")
    y = b.dense(x, num_classes, name="head")
    return _finish(b, y, num_classes, softmax, description="ViT-Tiny/4 (CIFAR)")
