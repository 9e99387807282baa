"""Naive full-softmax attention forward in float64: the oracle of flash_attention (and the forward that
flash_attention_bwd's oracle builds on).

Written for clarity, not speed: every (batch, head) builds its whole score matrix. The scale is 1/sqrt(D),
causal means query i attends to keys j <= i, and the logsumexp L_i = log(sum_j exp(S_ij)) is over the
scaled (and masked) scores, which is what the backward prompt calls m_i + log(l_i).
"""

from __future__ import annotations

import numpy as np


def _scores(q: np.ndarray, k: np.ndarray, causal: bool, rows: np.ndarray) -> np.ndarray:
    """Scaled scores of the query rows `rows` against all keys, -inf where the causal mask blocks."""
    s = q[rows] @ k.T / np.sqrt(q.shape[-1])
    if causal:
        s[np.arange(k.shape[0])[None, :] > rows[:, None]] = -np.inf
    return s


def attention_forward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool = True, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (O, L): O of shape (B, H, R, D) and the logsumexp L of shape (B, H, R), in float64.

    R is N, or len(rows) when only the query rows `rows` are wanted (a cheap spot check of a large output).
    """
    Q, K, V = (np.asarray(x, dtype=np.float64) for x in (Q, K, V))
    B, H, N, D = Q.shape
    rows = np.arange(N) if rows is None else np.asarray(rows)
    out = np.empty((B, H, len(rows), D))
    L = np.empty((B, H, len(rows)))
    for b in range(B):
        for h in range(H):
            s = _scores(Q[b, h], K[b, h], causal, rows)
            m = s.max(axis=-1, keepdims=True)
            p = np.exp(s - m)
            total = p.sum(axis=-1, keepdims=True)
            out[b, h] = (p / total) @ V[b, h]
            L[b, h] = (m + np.log(total))[:, 0]
    return out, L
