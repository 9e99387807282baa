"""A cache object that owns the attention: attend(q, k, v, n_new) appends the projected keys and values of
the new tokens and returns their attention over each sequence's history. Time-major buffers (B, T, H, Dh),
stored in half precision (a compressed cache, which the prompt allows)."""

from __future__ import annotations

import numpy as np


class CacheFull(Exception):
    pass


class SequenceCache:
    def __init__(self, max_batch: int, max_len: int, n_heads: int, head_dim: int):
        self.k = np.zeros((max_batch, max_len, n_heads, head_dim), dtype=np.float16)
        self.v = np.zeros_like(self.k)
        self.used = np.zeros(max_batch, dtype=np.int64)

    def attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, n_new=None) -> np.ndarray:
        """q, k, v: (B, T, H, Dh); sequence b brings its first n_new[b] tokens (default T). Returns
        (B, T, H, Dh), zeros at padding."""
        b, t, _, dh = q.shape
        n_new = np.full(b, t) if n_new is None else np.asarray(n_new)
        if np.any(self.used + n_new > self.k.shape[1]):
            raise CacheFull(f"{int((self.used + n_new).max())} tokens do not fit in {self.k.shape[1]}")
        out = np.zeros_like(q)
        for i in range(b):
            p0, n = int(self.used[i]), int(n_new[i])
            self.k[i, p0 : p0 + n], self.v[i, p0 : p0 + n] = k[i, :n], v[i, :n]
            keys, vals = self.k[i, : p0 + n].transpose(1, 0, 2), self.v[i, : p0 + n].transpose(1, 0, 2)
            scores = q[i, :n].transpose(1, 0, 2) @ keys.transpose(0, 2, 1) / np.sqrt(dh)
            scores[:, np.arange(p0 + n)[None, :] > (p0 + np.arange(n))[:, None]] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            out[i, :n] = ((w / w.sum(-1, keepdims=True)) @ vals).transpose(1, 0, 2)
        self.used += n_new
        return out
