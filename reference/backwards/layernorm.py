"""Layer normalization over the last axis, with a hand-derived backward pass (NumPy only).

Forward:  y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics over the last axis D.
Backward: with xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) and g = dy * gamma,

    dbeta  = sum over all leading axes of dy
    dgamma = sum over all leading axes of dy * xhat
    dx     = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat))

The inputs may have any number of leading axes: (B, T, D) as in the prompt, but also (N, D) or (B, T, S, D).
Run this file to execute the finite-difference gradient check.
"""

from __future__ import annotations

import numpy as np

LayerNormCache = tuple[np.ndarray, np.ndarray, np.ndarray]


def layer_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, LayerNormCache]:
    """Return y and the cache (xhat, rstd, gamma) that the backward pass reuses.

    The variance is computed in two passes (mean first, then the mean of squared deviations): the one-pass
    formula E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std and can even turn negative.
    """
    x = np.asarray(x)
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = centered * rstd
    y = gamma * xhat + beta
    return y, (xhat, rstd, gamma)


def layer_norm_backward(dy: np.ndarray, cache: LayerNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dx, dgamma, dbeta) from the upstream gradient dy and the forward cache."""
    xhat, rstd, gamma = cache
    leading_axes = tuple(range(dy.ndim - 1))
    dbeta = dy.sum(axis=leading_axes)
    dgamma = (dy * xhat).sum(axis=leading_axes)
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def gradient_check(
    shape: tuple[int, ...] = (2, 3, 8), eps: float = 1e-5, step: float = 1e-6, seed: int = 0
) -> dict[str, float]:
    """Compare the analytic gradients with central finite differences of L = sum(y * dy), in float64.

    Returns the relative error of each gradient; values around 1e-9 or below mean the gradients agree.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2.0 + 0.5
    gamma = rng.standard_normal(shape[-1])
    beta = rng.standard_normal(shape[-1])
    dy = rng.standard_normal(shape)

    def loss(x_: np.ndarray, gamma_: np.ndarray, beta_: np.ndarray) -> float:
        return float(np.sum(layer_norm_forward(x_, gamma_, beta_, eps)[0] * dy))

    _, cache = layer_norm_forward(x, gamma, beta, eps)
    analytic = dict(zip(("x", "gamma", "beta"), layer_norm_backward(dy, cache), strict=True))
    params = {"x": x, "gamma": gamma, "beta": beta}
    errors = {}
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            plus = loss(x, gamma, beta)
            value[index] = original - step
            minus = loss(x, gamma, beta)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        scale = max(np.linalg.norm(numeric), np.linalg.norm(analytic[name]), 1e-12)
        errors[name] = float(np.linalg.norm(numeric - analytic[name]) / scale)
    return errors


if __name__ == "__main__":
    for shape in [(2, 3, 8), (4, 5, 1), (1, 1, 16), (3, 7)]:
        errors = gradient_check(shape)
        status = "ok" if max(errors.values()) < 1e-6 else "FAILED"
        print(f"shape {shape}: " + ", ".join(f"d{k} rel err {v:.2e}" for k, v in errors.items()) + f"  {status}")
