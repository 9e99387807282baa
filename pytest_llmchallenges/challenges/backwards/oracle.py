"""Float64 oracle for layer normalization over the last axis and its gradients.

Written along the textbook chain rule (through xhat, var and mean separately) rather than the compact formula
the reference uses, so that the two are independent derivations.
"""

from __future__ import annotations

import numpy as np


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, biased variance, two-pass, in float64."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray(gamma, np.float64) * (x - mean) / np.sqrt(var + eps) + np.asarray(beta, np.float64)


def layer_norm_grads(
    x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of L = sum(y * dy), in float64; dgamma and dbeta have the shape of gamma (D,)."""
    x = np.asarray(x, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    d = x.shape[-1]
    leading = tuple(range(x.ndim - 1))
    mean = x.mean(axis=-1, keepdims=True)
    xmu = x - mean
    var = (xmu**2).mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = xmu * inv_std

    dbeta = dy.sum(axis=leading)
    dgamma = (dy * xhat).sum(axis=leading)
    dxhat = dy * gamma
    dvar = np.sum(dxhat * xmu, axis=-1, keepdims=True) * -0.5 * inv_std**3
    dmean = -np.sum(dxhat * inv_std, axis=-1, keepdims=True) + dvar * np.mean(-2.0 * xmu, axis=-1, keepdims=True)
    dx = dxhat * inv_std + dvar * 2.0 * xmu / d + dmean / d
    return dx, dgamma, dbeta
