"""Functional KV cache: the cache is a dict that each call returns anew (no classes)."""

import numpy as np


def init_kv_cache(batch, n_heads, d_head, max_len):
    return {
        "k": np.zeros((batch, n_heads, max_len, d_head)),
        "v": np.zeros((batch, n_heads, max_len, d_head)),
        "pos": np.zeros(batch, dtype=int),
    }


def _heads(t, n_heads):
    b, s, d = t.shape
    return t.reshape(b, s, n_heads, d // n_heads).transpose(0, 2, 1, 3)


def mha_forward(x, params, cache, n_heads, seq_lens=None):
    """x: (B, S, D) new tokens (right-padded; seq_lens[b] of them are real). Returns (out, new_cache)."""
    b, s, _ = x.shape
    seq_lens = np.full(b, s) if seq_lens is None else np.asarray(seq_lens)
    q = _heads(x @ params["W_q"], n_heads)
    k = _heads(x @ params["W_k"], n_heads)
    v = _heads(x @ params["W_v"], n_heads)
    new = {"k": cache["k"].copy(), "v": cache["v"].copy(), "pos": cache["pos"] + seq_lens}
    max_len = new["k"].shape[2]
    if np.any(new["pos"] > max_len):
        raise IndexError(f"KV cache full: {new['pos'].max()} > {max_len}")
    out = np.zeros((b, s, x.shape[-1]))
    for i in range(b):
        p0, n = cache["pos"][i], seq_lens[i]
        new["k"][i, :, p0 : p0 + n] = k[i, :, :n]
        new["v"][i, :, p0 : p0 + n] = v[i, :, :n]
        keys, vals = new["k"][i, :, : p0 + n], new["v"][i, :, : p0 + n]
        scores = q[i, :, :n] @ keys.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        causal = np.arange(p0 + n)[None, :] <= (p0 + np.arange(n))[:, None]
        scores = np.where(causal, scores, -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        out[i, :n] = (w @ vals).transpose(1, 0, 2).reshape(n, -1)
    return out @ params["W_o"], new
