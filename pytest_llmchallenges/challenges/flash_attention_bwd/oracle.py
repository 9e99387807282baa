"""Naive full-softmax attention backward in float64: the oracle of flash_attention_bwd.

The softmax gradient needs D_i = sum_j P_ij dP_ij over the WHOLE row (the prompt's per-tile row sum is the trap);
scores and the forward are flash_attention's oracle, re-exported here so this folder names everything it uses.
"""

from __future__ import annotations

import numpy as np

from ..flash_attention.oracle import _scores, attention_forward

__all__ = ["attention_backward", "attention_dq_rows", "attention_forward"]


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
