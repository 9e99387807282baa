"""Naive full-softmax attention, forward and backward, in float64: the oracle for both flash challenges.

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


def attention_backward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, dO: np.ndarray, causal: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dQ, dK, dV) of the loss sum(O * dO), in float64.

    The softmax gradient is dS = P * (dP - D_i) with D_i = sum_j P_ij dP_ij taken over the WHOLE row, which
    equals sum_d dO_id O_id; and because S = Q K^T / sqrt(D), both dQ and dK carry the 1/sqrt(D) factor.
    """
    Q, K, V, dO = (np.asarray(x, dtype=np.float64) for x in (Q, K, V, dO))
    B, H, N, D = Q.shape
    scale = 1.0 / np.sqrt(D)
    dQ, dK, dV = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    for b in range(B):
        for h in range(H):
            s = _scores(Q[b, h], K[b, h], causal, np.arange(N))
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            dV[b, h] = p.T @ dO[b, h]
            dp = dO[b, h] @ V[b, h].T
            ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
            dQ[b, h] = scale * ds @ K[b, h]
            dK[b, h] = scale * ds.T @ Q[b, h]
    return dQ, dK, dV


def attention_dq_rows(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, dO: np.ndarray, rows: np.ndarray, causal: bool = True
) -> np.ndarray:
    """dQ at the query rows `rows` only, (B, H, R, D): a row of dQ needs just its own row of P, so this is a
    cheap spot check of a large backward (dK and dV need every row and are checked on smaller problems)."""
    Q, K, V, dO = (np.asarray(x, dtype=np.float64) for x in (Q, K, V, dO))
    B, H, _, D = Q.shape
    rows = np.asarray(rows)
    dq = np.empty((B, H, len(rows), D))
    for b in range(B):
        for h in range(H):
            s = _scores(Q[b, h], K[b, h], causal, rows)
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            dp = dO[b, h, rows] @ V[b, h].T
            ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
            dq[b, h] = ds @ K[b, h] / np.sqrt(D)
    return dq
