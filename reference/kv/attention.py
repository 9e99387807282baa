"""Multi-head attention that reads and extends a KVCache: prefill of a ragged batch, then decode steps.

Projection weights act as ``x @ W`` with W of shape (d_model, d_model); heads are the H consecutive slices
of width Dh = d_model / H of the projected features.
"""

from __future__ import annotations

import numpy as np
from kv_cache import KVCache


def split_heads(t: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, H * Dh) -> (B, H, T, Dh)."""
    batch, steps, width = t.shape
    return t.reshape(batch, steps, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def merge_heads(t: np.ndarray) -> np.ndarray:
    """(B, H, T, Dh) -> (B, T, H * Dh)."""
    batch, heads, steps, head_dim = t.shape
    return t.transpose(0, 2, 1, 3).reshape(batch, steps, heads * head_dim)


class MultiHeadAttention:
    def __init__(self, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray, num_heads: int) -> None:
        if wq.shape[1] % num_heads:
            raise ValueError(f"d_model {wq.shape[1]} is not divisible by num_heads {num_heads}")
        self.wq, self.wk, self.wv, self.wo = wq, wk, wv, wo
        self.num_heads = num_heads

    def forward(self, x: np.ndarray, cache: KVCache, layer: int, n_new: np.ndarray | None = None) -> np.ndarray:
        """Append the new tokens x (B, T, D) to the cache and attend over each sequence's whole history.

        Sequence b contributes its first n_new[b] tokens (default: all T); token t of sequence b sits at
        position lengths[b] + t and attends to positions 0 .. lengths[b] + t of its own sequence only.
        Outputs at padding positions are zero. Works for prefill (empty cache), decode (T = 1) and chunks.
        """
        batch, steps, _ = x.shape
        n_new = np.full(batch, steps, dtype=np.int64) if n_new is None else np.asarray(n_new, dtype=np.int64)
        start = cache.lengths[layer].copy()
        q = split_heads(x @ self.wq, self.num_heads)
        k = split_heads(x @ self.wk, self.num_heads)
        v = split_heads(x @ self.wv, self.num_heads)
        cache.append(layer, k, v, n_new)
        keys, values, lengths = cache.view(layer)

        scores = q @ keys.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])  # (B, H, T, L)
        query_pos = start[:, None] + np.arange(steps)[None, :]  # (B, T) absolute positions
        key_pos = np.arange(keys.shape[2])
        allowed = (key_pos[None, None, :] <= query_pos[:, :, None]) & (key_pos[None, None, :] < lengths[:, None, None])
        valid_query = np.arange(steps)[None, :] < n_new[:, None]  # (B, T)
        allowed &= valid_query[:, :, None]
        scores = np.where(allowed[:, None], scores, -np.inf)
        row_max = np.max(scores, axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # padding rows see no key at all
        weights = np.exp(scores - row_max)
        denom = weights.sum(axis=-1, keepdims=True)
        weights = weights / np.where(denom > 0, denom, 1.0)
        out = merge_heads(weights @ values) @ self.wo
        return np.where(valid_query[:, :, None], out, 0.0)

    def prefill(self, x: np.ndarray, lengths: np.ndarray, cache: KVCache, layer: int) -> np.ndarray:
        """Process right-padded prompts x (B, T, D) of lengths[b] tokens each; returns (B, T, D)."""
        if np.any(cache.lengths[layer] != 0):
            raise ValueError("prefill expects an empty cache; use forward() to append a chunk")
        return self.forward(x, cache, layer, lengths)

    def decode_step(self, x: np.ndarray, cache: KVCache, layer: int) -> np.ndarray:
        """One new token per sequence, x of shape (B, D); returns (B, D)."""
        return self.forward(x[:, None, :], cache, layer)[:, 0, :]


if __name__ == "__main__":
    # Incremental decoding of a ragged batch through two layers equals full recomputation.
    rng = np.random.default_rng(0)
    batch, heads, head_dim, layers, capacity = 3, 4, 8, 2, 32
    d_model = heads * head_dim
    attn = [MultiHeadAttention(*(rng.standard_normal((d_model, d_model)) / np.sqrt(d_model) for _ in range(4)), heads)
            for _ in range(layers)]  # fmt: skip
    cache = KVCache(layers, batch, heads, head_dim, capacity, dtype=np.float64)
    lengths = np.array([5, 2, 7])
    prompt = rng.standard_normal((batch, 7, d_model))
    history = [list(prompt[b, : lengths[b]]) for b in range(batch)]
    h = prompt
    for layer in range(layers):
        h = attn[layer].prefill(h, lengths, cache, layer)
    for _ in range(4):
        token = rng.standard_normal((batch, d_model))
        for b in range(batch):
            history[b].append(token[b])
        h = token
        for layer in range(layers):
            h = attn[layer].decode_step(h, cache, layer)
        for b in range(batch):
            full = np.array(history[b])[None]
            fresh = KVCache(layers, 1, heads, head_dim, capacity, dtype=np.float64)
            for layer in range(layers):
                full = attn[layer].forward(full, fresh, layer)
            assert np.allclose(full[0, -1], h[b]), "incremental decoding differs from full recomputation"
    print(f"ok: incremental == full recomputation; cache holds {cache.nbytes / 1024:.1f} KiB")
