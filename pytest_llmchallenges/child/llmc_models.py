"""Small language models that submissions must be able to call: the grader's MinimalLM.

It lives on the sandbox side because a submission calls it (as its target model or its beam-search model)
inside the child, while the grading process uses the very same code as an oracle (greedy decoding).

MinimalLM is the prompts' "random 1-layer transformer", made tree-consistent: by default it has no absolute
position embedding, so the logits at a tree node under a tree mask equal the autoregressive logits of prompt +
path to that node; and its residual connection is weak, so that predictions depend on the context and not only on
the current token (a verifier that reads logits at the wrong position is then exposed).

With ``position_scale`` > 0 it also has an absolute position embedding and honours explicit ``positions``
(a verifier that passes position ids must pass the right ones: prompt length - 1 + depth for a tree node).
Where none are passed, a token's position is the number of earlier tokens its mask row lets it see, which is
its autoregressive position for causal and tree masks alike, so the model stays tree-consistent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize_mask(mask: object, length: int) -> np.ndarray | None:
    """Turn a submission's mask into a boolean (L, L) or (n, L, L) array, True where attention is allowed.

    Accepts booleans, 0/1 numbers (1 = attend), or additive masks (0 = attend, -inf or a large negative =
    blocked), with leading singleton axes. None stays None (causal).
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.shape[-2:] != (length, length):
        raise ValueError(f"mask has shape {np.asarray(mask).shape}, expected ({length}, {length})")
    if m.dtype == bool:
        return m
    m = m.astype(np.float64)
    if np.all((m == 0) | (m == 1)) and np.any(m == 1):
        return m == 1
    return m > -1e4


def causal_mask(length: int) -> np.ndarray:
    """The boolean causal mask: position i attends to j <= i."""
    return np.tril(np.ones((length, length), dtype=bool))


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class MinimalLM:
    """Embedding, one pre-norm transformer block (multi-head attention + MLP) and an LM head, in float64.

    ``logits(tokens, mask=None)``: tokens (L,) -> (L, V), or (n, L) -> (n, L, V). ``mask``: None for causal,
    else anything :func:`normalize_mask` accepts, (L, L) or (n, L, L).
    """

    def __init__(
        self,
        vocab_size: int = 1000,
        d_model: int = 64,
        n_heads: int = 4,
        seed: int = 0,
        residual: float = 0.3,
        logit_scale: float = 3.0,
        position_scale: float = 0.0,
        max_position: int = 4096,
    ) -> None:
        rng = np.random.default_rng(seed)
        d, v, ff = d_model, vocab_size, 4 * d_model
        self.vocab_size, self.d_model, self.n_heads, self.residual = v, d, n_heads, residual
        self.embed = rng.standard_normal((v, d))
        self.w_q, self.w_k, self.w_v, self.w_o = (rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(4))
        self.w_up = rng.standard_normal((d, ff)) / np.sqrt(d)
        self.w_down = rng.standard_normal((ff, d)) / np.sqrt(ff)
        self.w_head = rng.standard_normal((d, v)) * (logit_scale / np.sqrt(d))
        self.pos_embed = position_scale * rng.standard_normal((max_position, d)) if position_scale else None

    def _attention(self, x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        n, length, d = x.shape
        h, dh = self.n_heads, d // self.n_heads

        def heads(w: np.ndarray) -> np.ndarray:
            return (x @ w).reshape(n, length, h, dh).transpose(0, 2, 1, 3)

        q, k, v = heads(self.w_q), heads(self.w_k), heads(self.w_v)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        scores = np.where(allowed[:, None], scores, -np.inf)
        row_max = scores.max(axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)
        p = np.exp(scores - row_max)
        p /= np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
        out = (p @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
        return out @ self.w_o

    def logits(self, tokens: Sequence[int] | np.ndarray, mask: object = None, positions: object = None) -> np.ndarray:
        ids = np.asarray(tokens, dtype=np.int64)
        single = ids.ndim == 1
        ids = np.atleast_2d(ids)
        n, length = ids.shape
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        allowed = normalize_mask(mask, length)
        if allowed is None:
            allowed = causal_mask(length)
        allowed = np.broadcast_to(allowed, (n, length, length))
        x = self.embed[ids]
        if self.pos_embed is not None:
            x = x + self.pos_embed[self._positions(positions, allowed)]
        x = self.residual * x + self._attention(_layer_norm(x), allowed)
        x = x + np.maximum(_layer_norm(x) @ self.w_up, 0.0) @ self.w_down
        out = _layer_norm(x) @ self.w_head
        return out[0] if single else out

    __call__ = logits
    forward = logits

    def _positions(self, positions: object, allowed: np.ndarray) -> np.ndarray:
        """Explicit positions broadcast to (n, L), or each row's count of visible tokens minus one."""
        if positions is None:
            return allowed.sum(axis=-1) - 1
        pos = np.broadcast_to(np.asarray(positions, dtype=np.int64), allowed.shape[:2])
        limit = 0 if self.pos_embed is None else len(self.pos_embed)
        if pos.size and (pos.min() < 0 or pos.max() >= limit):
            raise ValueError(f"positions must lie in [0, {limit}), got {pos.min()}..{pos.max()}")
        return pos

    def log_probs(
        self, tokens: Sequence[int] | np.ndarray, mask: object = None, positions: object = None
    ) -> np.ndarray:
        return _log_softmax(self.logits(tokens, mask, positions))

    def next_logits(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for the next token after each of several (ragged) sequences: (n, V)."""
        return np.stack([self.logits(list(seq))[-1] for seq in sequences])

    def greedy(self, prompt: Sequence[int], n_new: int) -> list[int]:
        """Autoregressive greedy decoding: the generated tokens only."""
        seq = [int(t) for t in prompt]
        for _ in range(n_new):
            seq.append(int(np.argmax(self.logits(seq)[-1])))
        return seq[len(prompt) :]
