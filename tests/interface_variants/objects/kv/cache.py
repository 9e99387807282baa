"""KV cache as a config-driven object with update(k, v), and a separate attention function over it.

Layout differs from the reference: (B, max_seq_len, H, Dh), time-major. The caller projects q, k, v."""

from dataclasses import dataclass

import numpy as np


@dataclass
class KVConfig:
    max_batch_size: int
    max_seq_len: int
    n_heads: int
    head_dim: int


class LayerKVCache:
    def __init__(self, config: KVConfig):
        shape = (config.max_batch_size, config.max_seq_len, config.n_heads, config.head_dim)
        self.keys = np.zeros(shape)
        self.values = np.zeros(shape)
        self.seq_lens = np.zeros(config.max_batch_size, dtype=np.int64)
        self.last_added = np.zeros(config.max_batch_size, dtype=np.int64)

    def update(self, k, v, num_tokens=None):
        """k, v: (B, T, H, Dh); sequence b appends its first num_tokens[b] rows."""
        b, t = k.shape[:2]
        num_tokens = np.full(b, t) if num_tokens is None else np.asarray(num_tokens)
        if np.any(self.seq_lens + num_tokens > self.keys.shape[1]):
            raise OverflowError("KV cache capacity exceeded")
        for i in range(b):
            s, n = self.seq_lens[i], num_tokens[i]
            self.keys[i, s : s + n] = k[i, :n]
            self.values[i, s : s + n] = v[i, :n]
        self.seq_lens += num_tokens
        self.last_added = num_tokens


def attend(q, cache: LayerKVCache):
    """q: (B, T, H, Dh) queries of the tokens just added; returns (B, T, H, Dh), zeros at padding."""
    b, t, h, dh = q.shape
    out = np.zeros_like(q)
    for i in range(b):
        total, n = cache.seq_lens[i], cache.last_added[i]
        k = cache.keys[i, :total].transpose(1, 0, 2)  # (H, total, Dh)
        v = cache.values[i, :total].transpose(1, 0, 2)
        qi = q[i, :n].transpose(1, 0, 2)  # (H, n, Dh)
        s = qi @ k.transpose(0, 2, 1) / np.sqrt(dh)
        pos = total - n + np.arange(n)
        s[:, np.arange(total)[None, :] > pos[:, None]] = -np.inf
        p = np.exp(s - s.max(-1, keepdims=True))
        out[i, :n] = ((p / p.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2)
    return out
