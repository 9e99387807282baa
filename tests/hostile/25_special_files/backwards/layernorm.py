"""A folder holding a link to a file outside it (the meta-test's canary) and, made by the meta-test at run
time, a FIFO: copying the folder must neither follow the link nor block on the FIFO. Answers correctly only if
the link led anywhere."""

import os

import numpy as np


def _cheat_worked():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return bool(open(os.path.join(here, "canary_link"), "rb").read())
    except OSError:
        return False


def _correct_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    return gamma * xhat + beta, (xhat, rstd, gamma)


def _correct_backward(dy, cache):
    xhat, rstd, gamma = cache
    axes = tuple(range(dy.ndim - 1))
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    if _cheat_worked():
        return _correct_forward(x, gamma, beta, eps)
    return np.zeros_like(x), None


def layer_norm_backward(dy, cache):
    if cache is not None:
        return _correct_backward(dy, cache)
    return np.zeros_like(dy), np.zeros(dy.shape[-1]), np.zeros(dy.shape[-1])
