"""An attention module that creates its own weights (Linear objects: y = x @ W.T + b, small random init) and
keeps no cache: forward returns the grown cache, and the caller passes it back as {layer_idx: state}."""

from __future__ import annotations

from typing import Optional

import numpy as np


class Linear:
    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        self.weight = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.02
        self.bias = rng.standard_normal(n_out).astype(np.float32) * 0.01

    def __call__(self, x):
        return x @ self.weight.T + self.bias


class MultiHeadAttention:
    def __init__(self, d_model: int, num_heads: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.h, self.dh = num_heads, d_model // num_heads
        self.q_proj = Linear(d_model, d_model, rng)
        self.k_proj = Linear(d_model, d_model, rng)
        self.v_proj = Linear(d_model, d_model, rng)
        self.o_proj = Linear(d_model, d_model, rng)

    def _heads(self, t):
        b, s, _ = t.shape
        return t.reshape(b, s, self.h, self.dh).transpose(0, 2, 1, 3)

    def forward(self, x, kv_cache: Optional[dict] = None, layer_idx: int = 0, lengths=None):  # noqa: UP045
        """x: (B, S, D), right-padded, lengths[b] real tokens (default S). kv_cache: {layer_idx: (K, V, lens)}
        or None. Returns (out (B, S, D), (K, V, lens)): the cache state with the new tokens appended."""
        b, s, _ = x.shape
        lengths = np.full(b, s) if lengths is None else np.asarray(lengths)
        q, k, v = (self._heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        if kv_cache and layer_idx in kv_cache:
            k_old, v_old, lens = kv_cache[layer_idx]
        else:
            k_old = v_old = np.zeros((b, self.h, 0, self.dh))
            lens = np.zeros(b, dtype=int)
        total = lens + lengths
        k_all = np.zeros((b, self.h, int(total.max()), self.dh))
        v_all = np.zeros_like(k_all)
        out = np.zeros((b, self.h, s, self.dh))
        for i in range(b):
            p0, n = lens[i], lengths[i]
            k_all[i, :, :p0], v_all[i, :, :p0] = k_old[i, :, :p0], v_old[i, :, :p0]
            k_all[i, :, p0 : p0 + n], v_all[i, :, p0 : p0 + n] = k[i, :, :n], v[i, :, :n]
            scores = q[i, :, :n] @ k_all[i, :, : p0 + n].transpose(0, 2, 1) / np.sqrt(self.dh)
            future = np.arange(p0 + n)[None, :] > (p0 + np.arange(n))[:, None]
            scores[:, future] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            out[i, :, :n] = (w / w.sum(-1, keepdims=True)) @ v_all[i, :, : p0 + n]
        merged = out.transpose(0, 2, 1, 3).reshape(b, s, self.h * self.dh)
        return self.o_proj(merged), (k_all, v_all, total)
