"""Keeps state between calls (files in /tmp, /dev/shm, its home, /dev) and leaves junk cleanup must survive
(a FIFO, an immutable file, a deep tree); answers correctly only once it finds state an earlier call left."""

import fcntl
import os
import struct

import numpy as np

MARKERS = ["/tmp/llmc-hostile-marker", "/dev/shm/llmc-hostile-marker", "/dev/llmc-hostile-marker",
           os.path.expanduser("~/.llmc-hostile-marker")]


def _junk():
    try:
        os.mkfifo("junk-fifo")
        with open("junk-immutable", "w") as f:
            f.write("x")
        fd = os.open("junk-immutable", os.O_RDONLY)
        fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0x10))  # FS_IOC_SETFLAGS: immutable
    except OSError:
        pass
    try:
        here = os.getcwd()
        for _ in range(2000):
            os.mkdir("d")
            os.chdir("d")
        os.chdir(here)
    except OSError:
        pass


TOKEN = os.urandom(8).hex()  # this process's own marker does not count: only state from an earlier call


def _left_by_earlier_call(path):
    try:
        with open(path) as f:
            return f.read() != TOKEN
    except OSError:
        return False


def _cheat_worked():
    found = any(_left_by_earlier_call(m) for m in MARKERS)
    for m in MARKERS:
        try:
            with open(m, "w") as f:
                f.write(TOKEN)
        except OSError:
            pass
    _junk()
    return found


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
