"""A per-layer cache written by the caller (update(new_k, new_v, positions)) and an attention function that
projects the queries itself from hidden states and the weights it is given. Ragged batches go through the
write offsets: ``positions[b]`` is where sequence b's new tokens start."""

from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, batch_size: int, max_seq_len: int, num_heads: int, head_dim: int, dtype=np.float32):
        self.k_cache = np.zeros((batch_size, num_heads, max_seq_len, head_dim), dtype=dtype)
        self.v_cache = np.zeros_like(self.k_cache)
        self.seq_lens = [0] * batch_size
        self.last_t = 0

    def update(self, new_k: np.ndarray, new_v: np.ndarray, positions=None) -> None:
        """new_k, new_v: (B, H, T, D). Sequence b writes at positions[b] (default: its current length)."""
        t = new_k.shape[2]
        for b in range(new_k.shape[0]):
            pos = int(positions[b]) if positions is not None else self.seq_lens[b]
            if pos + t > self.k_cache.shape[2]:
                raise ValueError(f"sequence {b}: {pos + t} positions exceed the cache")
            self.k_cache[b, :, pos : pos + t] = new_k[b]
            self.v_cache[b, :, pos : pos + t] = new_v[b]
            self.seq_lens[b] = pos + t
        self.last_t = t


def attention_with_cache(q_new: np.ndarray, cache: KVCache, w_q: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """q_new: hidden states (B, T, d_model) of the tokens just written; causal over each sequence's cache."""
    b, t, d = q_new.shape
    h, dh = cache.k_cache.shape[1], cache.k_cache.shape[3]
    q = (q_new @ w_q).reshape(b, t, h, dh).transpose(0, 2, 1, 3)
    out = np.empty((b, t, d))
    for i in range(b):
        n = cache.seq_lens[i]
        k, v = cache.k_cache[i, :, :n], cache.v_cache[i, :, :n]
        scores = q[i] @ k.transpose(0, 2, 1) / np.sqrt(dh)
        scores[:, np.arange(n)[None, :] > (n - t + np.arange(t))[:, None]] = -np.inf
        w = np.exp(scores - scores.max(-1, keepdims=True))
        out[i] = ((w / w.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(t, d)
    return out @ w_o
