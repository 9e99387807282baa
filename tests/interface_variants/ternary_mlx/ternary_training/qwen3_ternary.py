"""A Qwen3-style model in MLX whose every matrix is ternary, plus its data helpers and loss."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from bitnet import BitLinear, TernaryEmbedding


@dataclass
class ModelArgs:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    head_dim: int = 64
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        d, hd = args.hidden_size, args.head_dim
        self.n_heads, self.n_kv, self.hd = args.num_attention_heads, args.num_key_value_heads, hd
        self.q_proj = BitLinear(d, self.n_heads * hd)
        self.k_proj = BitLinear(d, self.n_kv * hd)
        self.v_proj = BitLinear(d, self.n_kv * hd)
        self.o_proj = BitLinear(self.n_heads * hd, d)
        self.q_norm = nn.RMSNorm(hd, eps=args.rms_norm_eps)
        self.k_norm = nn.RMSNorm(hd, eps=args.rms_norm_eps)
        self.rope = nn.RoPE(hd, traditional=False, base=args.rope_theta)

    def __call__(self, x: mx.array) -> mx.array:
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).reshape(b, t, self.n_heads, self.hd)).transpose(0, 2, 1, 3)
        k = self.k_norm(self.k_proj(x).reshape(b, t, self.n_kv, self.hd)).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(b, t, self.n_kv, self.hd).transpose(0, 2, 1, 3)
        q, k = self.rope(q), self.rope(k)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.hd**-0.5, mask="causal")
        return self.o_proj(o.transpose(0, 2, 1, 3).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.gate_proj = BitLinear(args.hidden_size, args.intermediate_size)
        self.up_proj = BitLinear(args.hidden_size, args.intermediate_size)
        self.down_proj = BitLinear(args.intermediate_size, args.hidden_size)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.mlp = MLP(args)

    def __call__(self, x: mx.array) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x))
        return h + self.mlp(self.post_attention_layernorm(h))


class Model(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.embed_tokens = TernaryEmbedding(args.vocab_size, args.hidden_size)
        self.layers = [Block(args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.lm_head = BitLinear(args.hidden_size, args.vocab_size)

    def __call__(self, ids: mx.array) -> mx.array:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def loss_fn(model: Model, inputs: mx.array, targets: mx.array) -> mx.array:
    return nn.losses.cross_entropy(model(inputs), targets, reduction="mean")


def get_batch(data: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator):
    starts = rng.integers(0, len(data) - block_size - 1, size=batch_size)
    x = np.stack([data[s : s + block_size] for s in starts])
    y = np.stack([data[s + 1 : s + block_size + 1] for s in starts])
    return mx.array(x), mx.array(y)


def split_text(text: str, holdout_every: int = 10) -> tuple[str, str]:
    """Every 10th paragraph is held out for validation."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    train = [p for i, p in enumerate(paragraphs) if i % holdout_every != holdout_every - 1]
    val = [p for i, p in enumerate(paragraphs) if i % holdout_every == holdout_every - 1]
    return "\n\n".join(train), "\n\n".join(val)
