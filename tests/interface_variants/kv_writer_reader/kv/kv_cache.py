"""A config-built cache that appends one token per sequence (update), a prompt function that stores a whole
prompt and attends causally (store_prompt), and a decode function that reads the cache for one new query
(cached_attention, with optional per-sequence lengths)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CacheConfig:
    batch_size: int
    num_heads: int
    head_dim: int
    max_seq_len: int
    dtype: type = np.float16


class KVCache:
    def __init__(self, config: CacheConfig):
        shape = (config.batch_size, config.num_heads, config.max_seq_len, config.head_dim)
        self.cache_k = np.zeros(shape, dtype=config.dtype)
        self.cache_v = np.zeros(shape, dtype=config.dtype)
        self.lengths = np.zeros(config.batch_size, dtype=np.int64)

    def update(self, keys: np.ndarray, values: np.ndarray) -> None:
        """keys, values: (B, H, 1, Dh), appended at each sequence's own length."""
        if np.any(self.lengths >= self.cache_k.shape[2]):
            raise IndexError("KV cache is full")
        rows = np.arange(len(self.lengths))
        self.cache_k[rows, :, self.lengths] = keys[:, :, 0]
        self.cache_v[rows, :, self.lengths] = values[:, :, 0]
        self.lengths += 1


def _softmax_attend(q, k, v, allowed, scale):
    scores = np.where(allowed, np.einsum("bhqd,bhkd->bhqk", q, k) * scale, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("bhqk,bhkd->bhqd", w / w.sum(-1, keepdims=True), v)


def store_prompt(q, k, v, cache: KVCache, scale: float, lengths=None):
    """Prefill: q, k, v (B, H, S, Dh) of right-padded prompts with lengths[b] real tokens; returns
    (B, H, S, Dh) and stores each prompt's keys and values."""
    b, _, s, _ = q.shape
    lengths = np.full(b, s) if lengths is None else np.asarray(lengths)
    if s > cache.cache_k.shape[2]:
        raise IndexError("prompt longer than the cache")
    cache.cache_k[:, :, :s], cache.cache_v[:, :, :s] = k, v
    cache.lengths[:] = lengths
    pos = np.arange(s)
    allowed = (pos[None, :] <= pos[:, None])[None, None] & (pos[None, None, None, :] < lengths[:, None, None, None])
    return _softmax_attend(q, k, v, allowed, scale)


def cached_attention(q, cache: KVCache, scale: float, lengths=None, dtype=np.float32):
    """Decode: q (B, H, 1, Dh) of the token just appended; lengths[b] = tokens sequence b holds (default:
    the cache's own counts)."""
    lengths = cache.lengths if lengths is None else np.asarray(lengths)
    n = int(lengths.max())
    k = cache.cache_k[:, :, :n].astype(dtype)
    v = cache.cache_v[:, :, :n].astype(dtype)
    allowed = np.arange(n)[None, None, None, :] < lengths[:, None, None, None]
    return _softmax_attend(q.astype(dtype), k, v, allowed, scale).astype(q.dtype)
