"""GPT-style attention that creates a fused q|k|v matrix (c_attn, x @ W) and keeps its KV cache inside:
prefill(x, prompt_lengths) then decode_step(x) per token."""

import numpy as np


class CausalSelfAttention:
    def __init__(self, n_embd, n_head, block_size, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        self.n_head, self.hd = n_head, n_embd // n_head
        self.c_attn = rng.normal(0, 0.05, (n_embd, 3 * n_embd))
        self.c_proj = rng.normal(0, 0.05, (n_embd, n_embd))
        self.k = np.zeros((batch_size, n_head, block_size, self.hd))
        self.v = np.zeros_like(self.k)
        self.t = np.zeros(batch_size, dtype=int)

    def _attend(self, x, n_new):
        b, s, d = x.shape
        q, k, v = np.split(x @ self.c_attn, 3, axis=-1)
        q, k, v = (a.reshape(b, s, self.n_head, self.hd).transpose(0, 2, 1, 3) for a in (q, k, v))
        if np.any(self.t + n_new > self.k.shape[2]):
            raise RuntimeError("context window exceeded")
        y = np.zeros((b, s, d))
        for i in range(b):
            t0, n = self.t[i], n_new[i]
            self.k[i, :, t0 : t0 + n], self.v[i, :, t0 : t0 + n] = k[i, :, :n], v[i, :, :n]
            att = q[i, :, :n] @ self.k[i, :, : t0 + n].transpose(0, 2, 1) / np.sqrt(self.hd)
            att = np.where(np.tril(np.ones((n, t0 + n)), k=t0) > 0, att, -np.inf)
            att = np.exp(att - att.max(-1, keepdims=True))
            y[i, :n] = ((att / att.sum(-1, keepdims=True)) @ self.v[i, :, : t0 + n]).transpose(1, 0, 2).reshape(n, d)
        self.t = self.t + n_new
        return y @ self.c_proj

    def prefill(self, x, prompt_lengths):
        return self._attend(x, np.asarray(prompt_lengths))

    def decode_step(self, x):
        """x: (B, n_embd), one token per sequence."""
        return self._attend(x[:, None, :], np.ones(len(x), dtype=int))[:, 0]
