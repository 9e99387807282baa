"""A Qwen3-style decoder in NumPy with hand-written backward passes; every weight matrix is ternary.

Qwen3's features, kept: grouped-query attention with 2 query heads per key/value head, per-head RMSNorm on
queries and keys (QK-norm), rotary position embeddings (rotate-half layout, base 1e6 as in Qwen3), pre-norm
RMSNorm blocks, SwiGLU MLP, no biases anywhere, a final RMSNorm and an LM head. The embedding, the four
attention projections, the three MLP projections and the LM head are ternary (:mod:`ternary`); the
RMSNorm gains stay float32. The LM head is untied from the embedding: both are ternary either way, and
untying keeps each one's gradient its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ternary import GROUP_SIZE, TernaryEmbedding, TernaryLinear


@dataclass
class Settings:
    vocab_size: int = 1024
    hidden_size: int = 256
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 768
    max_position_embeddings: int = 128
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    group_size: int = GROUP_SIZE

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULTS = Settings(
    vocab_size=256,  # raw bytes
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    intermediate_size=384,
    max_position_embeddings=64,
)


class RMSNorm:
    """y = x / rms(x) * gain over the last axis; the gain stays float (few parameters)."""

    def __init__(self, dim: int, eps: float) -> None:
        self.weight = np.ones(dim, dtype=np.float32)
        self.grad = np.zeros_like(self.weight)
        self.eps = eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return x * self._r * self.weight

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, r = self._x, self._r
        self.grad += np.sum((dy * x * r).reshape(-1, x.shape[-1]), axis=0)
        u = dy * self.weight
        return r * u - x * (r**3) * np.mean(u * x, axis=-1, keepdims=True)

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weight": self.grad}


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(seq_len, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _rotate_half_transposed(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([x[..., h:], -x[..., :h]], axis=-1)


class Attention:
    """Causal GQA self-attention with QK-norm and RoPE. Tensors inside are (B, heads, T, head_dim)."""

    def __init__(self, cfg: Settings, rng: np.random.Generator) -> None:
        d, hq, hkv, hd = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        if hq % hkv:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        self.hq, self.hkv, self.hd = hq, hkv, hd
        self.q_proj = TernaryLinear(d, hq * hd, cfg.group_size, rng)
        self.k_proj = TernaryLinear(d, hkv * hd, cfg.group_size, rng)
        self.v_proj = TernaryLinear(d, hkv * hd, cfg.group_size, rng)
        self.o_proj = TernaryLinear(hq * hd, d, cfg.group_size, rng)
        self.q_norm = RMSNorm(hd, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(hd, cfg.rms_norm_eps)
        self.theta = cfg.rope_theta

    def forward(self, x: np.ndarray) -> np.ndarray:
        b, t, _ = x.shape
        rep = self.hq // self.hkv
        q = self.q_norm.forward(self.q_proj.forward(x).reshape(b, t, self.hq, self.hd))
        k = self.k_norm.forward(self.k_proj.forward(x).reshape(b, t, self.hkv, self.hd))
        v = self.v_proj.forward(x).reshape(b, t, self.hkv, self.hd)
        cos, sin = rope_tables(t, self.hd, self.theta)
        q = q.transpose(0, 2, 1, 3)
        k = k.transpose(0, 2, 1, 3)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k = np.repeat(k, rep, axis=1)  # query head h reads key/value head h // rep
        v = np.repeat(v.transpose(0, 2, 1, 3), rep, axis=1)
        scale = np.float32(self.hd**-0.5)
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale
        scores = scores + np.triu(np.full((t, t), -np.inf, dtype=np.float32), k=1)
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        o = p @ v
        self._cache = (q, k, v, p, cos, sin, scale)
        return self.o_proj.forward(o.transpose(0, 2, 1, 3).reshape(b, t, self.hq * self.hd))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        q, k, v, p, cos, sin, scale = self._cache
        b, _, t, _ = q.shape
        rep = self.hq // self.hkv
        do = self.o_proj.backward(dy).reshape(b, t, self.hq, self.hd).transpose(0, 2, 1, 3)
        dp = do @ v.transpose(0, 1, 3, 2)
        dv = p.transpose(0, 1, 3, 2) @ do
        ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True)) * scale
        dq = ds @ k
        dk = ds.transpose(0, 1, 3, 2) @ q
        dk = dk.reshape(b, self.hkv, rep, t, self.hd).sum(axis=2)
        dv = dv.reshape(b, self.hkv, rep, t, self.hd).sum(axis=2)
        dq = dq * cos + _rotate_half_transposed(dq * sin)
        dk = dk * cos + _rotate_half_transposed(dk * sin)
        dq = self.q_norm.backward(dq.transpose(0, 2, 1, 3)).reshape(b, t, -1)
        dk = self.k_norm.backward(dk.transpose(0, 2, 1, 3)).reshape(b, t, -1)
        dv = dv.transpose(0, 2, 1, 3).reshape(b, t, -1)
        return self.q_proj.backward(dq) + self.k_proj.backward(dk) + self.v_proj.backward(dv)

    def modules(self) -> dict[str, object]:
        return {
            "q_proj": self.q_proj,
            "k_proj": self.k_proj,
            "v_proj": self.v_proj,
            "o_proj": self.o_proj,
            "q_norm": self.q_norm,
            "k_norm": self.k_norm,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


class SwiGLU:
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: Settings, rng: np.random.Generator) -> None:
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = TernaryLinear(d, f, cfg.group_size, rng)
        self.up_proj = TernaryLinear(d, f, cfg.group_size, rng)
        self.down_proj = TernaryLinear(f, d, cfg.group_size, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        a = self.gate_proj.forward(x)
        u = self.up_proj.forward(x)
        sig = _sigmoid(a)
        self._cache = (a, u, sig)
        return self.down_proj.forward(a * sig * u)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a, u, sig = self._cache
        dh = self.down_proj.backward(dy)
        da = dh * u * sig * (1.0 + a * (1.0 - sig))
        du = dh * a * sig
        return self.gate_proj.backward(da) + self.up_proj.backward(du)

    def modules(self) -> dict[str, object]:
        return {"gate_proj": self.gate_proj, "up_proj": self.up_proj, "down_proj": self.down_proj}


class DecoderLayer:
    def __init__(self, cfg: Settings, rng: np.random.Generator) -> None:
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, rng)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = x + self.self_attn.forward(self.input_layernorm.forward(x))
        return h + self.mlp.forward(self.post_attention_layernorm.forward(h))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dh = dy + self.post_attention_layernorm.backward(self.mlp.backward(dy))
        return dh + self.input_layernorm.backward(self.self_attn.backward(dh))

    def modules(self) -> dict[str, object]:
        return {
            "input_layernorm": self.input_layernorm,
            "self_attn": self.self_attn,
            "post_attention_layernorm": self.post_attention_layernorm,
            "mlp": self.mlp,
        }


class ByteTernaryLM:
    """Embedding -> decoder layers -> final RMSNorm -> LM head; forward returns logits (B, T, vocab)."""

    def __init__(self, seed: int = 0) -> None:
        cfg = DEFAULTS
        rng = np.random.default_rng(seed)
        self.config = cfg
        self.embed_tokens = TernaryEmbedding(cfg.vocab_size, cfg.hidden_size, cfg.group_size, rng)
        self.layers = [DecoderLayer(cfg, rng) for _ in range(cfg.num_hidden_layers)]
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = TernaryLinear(cfg.hidden_size, cfg.vocab_size, cfg.group_size, rng)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        x = self.embed_tokens.forward(ids)
        for layer in self.layers:
            x = layer.forward(x)
        return self.lm_head.forward(self.norm.forward(x))

    __call__ = forward

    def backward(self, dlogits: np.ndarray) -> None:
        dx = self.norm.backward(self.lm_head.backward(dlogits))
        for layer in reversed(self.layers):
            dx = layer.backward(dx)
        self.embed_tokens.backward(dx)

    def named_modules(self) -> dict[str, object]:
        """Every module with parameters, by dotted name (leaves only)."""
        out: dict[str, object] = {"embed_tokens": self.embed_tokens}
        for i, layer in enumerate(self.layers):
            for name, mod in layer.modules().items():
                if hasattr(mod, "modules"):
                    for sub, leaf in mod.modules().items():
                        out[f"layers.{i}.{name}.{sub}"] = leaf
                else:
                    out[f"layers.{i}.{name}"] = mod
        out["norm"] = self.norm
        out["lm_head"] = self.lm_head
        return out

    def parameters(self) -> dict[str, np.ndarray]:
        return {f"{n}.weight": m.weight for n, m in self.named_modules().items()}

    def gradients(self) -> dict[str, np.ndarray]:
        return {f"{n}.weight": m.grad for n, m in self.named_modules().items()}

    def zero_grad(self) -> None:
        for g in self.gradients().values():
            g[...] = 0.0

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters().values())


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean next-token cross-entropy (nats) and its gradient with respect to the logits."""
    v = logits.shape[-1]
    z = logits.reshape(-1, v).astype(np.float32)
    t = np.asarray(targets).reshape(-1)
    z = z - z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1))
    loss = float(np.mean(lse - z[np.arange(t.size), t]))
    grad = np.exp(z - lse[:, None])
    grad[np.arange(t.size), t] -= 1.0
    grad /= t.size
    return loss, grad.reshape(logits.shape)


def token_nll(model: ByteTernaryLM, ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-token negative log-likelihood (nats), shape of ``targets``; forward only."""
    logits = model.forward(ids).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits).sum(axis=-1))
    picked = np.take_along_axis(logits, np.asarray(targets)[..., None], axis=-1)[..., 0]
    return lse - picked


def loss_and_grad(model: ByteTernaryLM, ids: np.ndarray, targets: np.ndarray) -> float:
    """Forward + backward on one batch: fills the model's gradients, returns the mean loss (nats)."""
    model.zero_grad()
    loss, dlogits = cross_entropy(model.forward(ids), targets)
    model.backward(dlogits)
    return loss
