import numpy as np


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    return np.zeros_like(x), None


def layer_norm_backward(dy, cache):
    return np.zeros_like(dy), np.zeros(dy.shape[-1]), np.zeros(dy.shape[-1])
