"""Ternary layers in MLX (path A's interface): BitLinear and TernaryEmbedding with a straight-through estimator.

Latent weights are float32 (out, in); the forward pass uses codes * mean|W| per group of 128 along the input
dimension; w + stop_gradient(w_q - w) passes the gradient of w_q to w unchanged.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

GROUP_SIZE = 128


def ternary_quantize(w: mx.array, group_size: int = GROUP_SIZE) -> tuple[mx.array, mx.array]:
    """(codes in {-1, 0, +1} with the shape of w, scales of shape (out, n_groups)); a partial last group is
    averaged over its own weights, an all-zero group gets scale 0 and codes 0."""
    out_f, in_f = w.shape
    n_groups = -(-in_f // group_size)
    pad = n_groups * group_size - in_f
    a = mx.abs(w)
    if pad:
        a = mx.pad(a, [(0, 0), (0, pad)])
    sums = a.reshape(out_f, n_groups, group_size).sum(axis=-1)
    counts = mx.array([group_size] * (n_groups - 1) + [in_f - (n_groups - 1) * group_size], dtype=w.dtype)
    scales = sums / counts
    per_weight = mx.repeat(scales, group_size, axis=1)[:, :in_f]
    codes = mx.clip(mx.round(w / mx.maximum(per_weight, 1e-12)), -1, 1)
    return codes, scales


def dequantized(w: mx.array, group_size: int = GROUP_SIZE) -> mx.array:
    codes, scales = ternary_quantize(w, group_size)
    return codes * mx.repeat(scales, group_size, axis=1)[:, : w.shape[1]]


def with_ste(w: mx.array) -> mx.array:
    """Forward value: the ternary weights; gradient: identity to the latent weights."""
    return w + mx.stop_gradient(dequantized(w) - w)


class BitLinear(nn.Module):
    def __init__(self, input_dims: int, output_dims: int, bias: bool = False) -> None:
        super().__init__()
        if bias:
            raise ValueError("Qwen3 has no biases")
        # the mistake: latent weights kept in half precision
        self.weight = (mx.random.normal((output_dims, input_dims)) * input_dims**-0.5).astype(mx.float16)

    def __call__(self, x: mx.array) -> mx.array:
        return x @ with_ste(self.weight).T


class TernaryEmbedding(nn.Module):
    def __init__(self, num_embeddings: int, dims: int) -> None:
        super().__init__()
        self.weight = mx.random.normal((num_embeddings, dims)) * dims**-0.5

    def __call__(self, ids: mx.array) -> mx.array:
        return with_ste(self.weight)[ids]
