"""Ternary weights: group-wise projection to {-1, 0, +1} x scale, and the layers that train through it.

Conventions (the prompt leaves them open, so they are fixed here):

- Groups are 128 consecutive weights along the *input* dimension, i.e. along the last axis of a weight
  stored as (out_features, in_features) -- the layout llama.cpp's Q2_0 and MLX's quantizers use. An
  embedding table (vocab, d_model) is grouped along d_model, the axis its rows are read along.
- scale s = mean(|W_group|) (BitNet b1.58's absmean); codes = clip(round(W / s), -1, 1).
- A partial last group (in_features not a multiple of 128) gets the mean over its own weights only.
  Zero-padding it to 128 would dilute the mean and shrink its scale; that is a bug, not a convention.
- An all-zero group has s = 0: its codes are 0 and its projected weights are exactly 0 (the division
  uses max(s, tiny) so nothing becomes NaN).

Training uses the straight-through estimator: the forward pass uses the projected weights, and the
gradient with respect to the projected weights is passed unchanged to the latent float32 weights
(round() and the scale are treated as identity and constant).
"""

from __future__ import annotations

import numpy as np

GROUP_SIZE = 128
_TINY = 1e-12


def _grouped(w: np.ndarray, group_size: int) -> tuple[np.ndarray, int]:
    """View ``w`` as (..., n_groups, group_size) along its last axis, zero-padding a partial last group."""
    n = w.shape[-1]
    n_groups = -(-n // group_size)
    pad = n_groups * group_size - n
    if pad:
        w = np.concatenate([w, np.zeros((*w.shape[:-1], pad), dtype=w.dtype)], axis=-1)
    return w.reshape((*w.shape[:-1], n_groups, group_size)), n


def group_scales(w: np.ndarray, group_size: int = GROUP_SIZE) -> np.ndarray:
    """mean|W| per group along the last axis; shape (..., n_groups). A partial group averages its own size."""
    g, n = _grouped(np.abs(w), group_size)
    counts = np.full(g.shape[-2], group_size, dtype=w.dtype)
    counts[-1] = n - (g.shape[-2] - 1) * group_size
    return g.sum(axis=-1) / counts


def ternarize(w: np.ndarray, group_size: int = GROUP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scales): int8 codes in {-1, 0, +1} with the shape of ``w``, and per-group scales."""
    scales = group_scales(w, group_size)
    g, n = _grouped(w, group_size)
    codes = np.clip(np.rint(g / np.maximum(scales, _TINY)[..., None]), -1, 1)
    codes = codes.reshape((*g.shape[:-2], -1))[..., :n]
    return codes.astype(np.int8), scales


def expand_scales(scales: np.ndarray, n: int, group_size: int = GROUP_SIZE) -> np.ndarray:
    """Per-weight scale of shape (..., n) from per-group scales (..., n_groups)."""
    return np.repeat(scales, group_size, axis=-1)[..., :n]


def ternary_projection(w: np.ndarray, group_size: int = GROUP_SIZE) -> np.ndarray:
    """The projected weights codes * scale, with the dtype of ``w``: what the forward pass multiplies by."""
    codes, scales = ternarize(w, group_size)
    return (codes * expand_scales(scales, w.shape[-1], group_size)).astype(w.dtype)


def verify_ternary(w_projected: np.ndarray, group_size: int = GROUP_SIZE, tol: float = 1e-5) -> float:
    """Largest |W_q/s - round(W_q/s)| over all groups, where s is the group's nonzero magnitude.

    The prompt's check abs(round(W/s) - {-1,0,+1}) < 1e-5, applied to projected weights: within a group
    every nonzero weight must have the same magnitude s, so W_q/s is exactly -1, 0 or +1.
    """
    g, _ = _grouped(np.asarray(w_projected, dtype=np.float64), group_size)
    s = np.abs(g).max(axis=-1, keepdims=True)
    ratio = np.divide(g, s, out=np.zeros_like(g), where=s > 0)
    deviation = np.abs(ratio - np.clip(np.rint(ratio), -1, 1))
    return float(deviation.max()) if deviation.size else 0.0


class TernaryLinear:
    """y = x @ W_q.T with W_q the ternary projection of latent float32 weights W (out_features, in_features).

    No bias (Qwen3 has none). ``backward`` returns dL/dx and accumulates dL/dW_q into ``grad``; by the
    straight-through estimator that is the gradient of the latent weights.
    """

    def __init__(
        self, in_features: int, out_features: int, group_size: int = GROUP_SIZE, rng: np.random.Generator | None = None
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        # BitNet-style init: N(0, fan_in^-1/2); the projection applies from step 0
        self.weight = (rng.standard_normal((out_features, in_features)) * in_features**-0.5).astype(np.float32)
        self.grad = np.zeros_like(self.weight)
        self._x: np.ndarray | None = None
        self._wq: np.ndarray | None = None

    def projected_weight(self) -> np.ndarray:
        return ternary_projection(self.weight, self.group_size)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._wq = self.projected_weight()
        self._x = x
        # 2-D products run as one BLAS call; a stacked (B, T, in) operand loops over B
        return (x.reshape(-1, self.in_features) @ self._wq.T).reshape((*x.shape[:-1], self.out_features))

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x2 = self._x.reshape(-1, self.in_features)
        g2 = grad_out.reshape(-1, self.out_features)
        self.grad += g2.T @ x2  # dL/dW_q, passed straight through to the latent weights
        return (g2 @ self._wq).reshape((*grad_out.shape[:-1], self.in_features))

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weight": self.grad}


class TernaryEmbedding:
    """Token lookup in a ternary table: rows of W_q (vocab, d_model), grouped along d_model, with STE."""

    def __init__(
        self, vocab_size: int, d_model: int, group_size: int = GROUP_SIZE, rng: np.random.Generator | None = None
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.vocab_size, self.d_model, self.group_size = vocab_size, d_model, group_size
        # same scale as the projections: Adam's step size is relative to |W|, so one scale trains evenly
        self.weight = (rng.standard_normal((vocab_size, d_model)) * d_model**-0.5).astype(np.float32)
        self.grad = np.zeros_like(self.weight)
        self._ids: np.ndarray | None = None

    def projected_weight(self) -> np.ndarray:
        return ternary_projection(self.weight, self.group_size)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        self._ids = np.asarray(ids)
        return self.projected_weight()[self._ids]

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> None:
        np.add.at(self.grad, self._ids.reshape(-1), grad_out.reshape(-1, self.d_model))

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weight": self.grad}
