import numpy as np


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    return np.full_like(x, np.nan), x


def layer_norm_backward(dy, cache):
    return np.full_like(dy, np.nan), np.full(dy.shape[-1], np.nan), np.full(dy.shape[-1], np.nan)
