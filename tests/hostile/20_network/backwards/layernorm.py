"""Tries to talk to the grading machine: UDP and TCP to 127.0.0.1 (a port range the meta-test listens in),
an abstract and a pathname unix socket; answers correctly only if something was delivered."""

import socket

import numpy as np

PORTS = range(47800, 47900)


def _cheat_worked():
    delivered = False
    for port in PORTS:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"leak", ("127.0.0.1", port))
            s.close()
            delivered = True  # a UDP datagram left the process
            t = socket.create_connection(("127.0.0.1", port), timeout=0.05)
            t.sendall(b"leak")
            delivered = True
        except OSError:
            pass
    for where in ("\0llmc-hostile", "/tmp/llmc-hostile.sock"):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(b"leak", where)
            delivered = True
        except OSError:
            pass
    return delivered


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
