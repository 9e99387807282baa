"""Float64 oracle for the kv challenge: full causal multi-head attention over each sequence's own history.

No cache at all: every output is recomputed from the whole history of its sequence, which is what an
incremental implementation must reproduce exactly. A scripted session (prefill, decode, extend operations on
several independent layers) is replayed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def causal_multi_head_attention(
    x: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray, num_heads: int
) -> np.ndarray:
    """Outputs (T, D) of causal self-attention over one sequence x (T, D): heads are consecutive Dh-wide
    slices of x @ W, scale 1/sqrt(Dh), position i attends to positions j <= i, output = concat(heads) @ wo."""
    x = np.asarray(x, dtype=np.float64)
    steps, d_model = x.shape
    head_dim = d_model // num_heads
    q, k, v = (x @ np.asarray(w, np.float64) for w in (wq, wk, wv))
    out = np.empty((steps, d_model))
    allowed = np.tril(np.ones((steps, steps), dtype=bool))
    for h in range(num_heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        scores = np.where(allowed, q[:, cols] @ k[:, cols].T / np.sqrt(head_dim), -np.inf)
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out[:, cols] = (p / p.sum(axis=-1, keepdims=True)) @ v[:, cols]
    return out @ np.asarray(wo, np.float64)


def session_outputs(layers: Sequence[dict[str, np.ndarray]], num_heads: int, ops: Sequence[dict[str, Any]]) -> list:
    """Expected outputs of a scripted session, in the driver's format.

    ``layers[l]`` holds wq, wk, wv, wo. Each op feeds every layer its own input (layers are independent here:
    the grader tests cache separation, not a residual stream):
    - ``{"op": "prefill" or "extend", "x": (L, B, T, D), "lengths": (B,)}``: sequence b appends its first
      lengths[b] tokens; the expected output is (L, B, T, D) with zeros at padding positions;
    - ``{"op": "decode", "x": (L, B, D)}``: one token per sequence; the expected output is (L, B, D).
    """
    n_layers = len(layers)
    batch = np.asarray(ops[0]["x"]).shape[1]
    history: list[list[list[np.ndarray]]] = [[[] for _ in range(batch)] for _ in range(n_layers)]
    results = []
    for op in ops:
        x = np.asarray(op["x"], dtype=np.float64)
        out = np.zeros_like(x)
        for layer, w in enumerate(layers):
            for b in range(batch):
                new = x[layer, b][None] if op["op"] == "decode" else x[layer, b, : int(op["lengths"][b])]
                if len(new) == 0:
                    continue
                history[layer][b].extend(new)
                full = causal_multi_head_attention(np.array(history[layer][b]), w["wq"], w["wk"], w["wv"],
                                                   w["wo"], num_heads)  # fmt: skip
                if op["op"] == "decode":
                    out[layer, b] = full[-1]
                else:
                    out[layer, b, : len(new)] = full[-len(new) :]
        results.append(out)
    return results
