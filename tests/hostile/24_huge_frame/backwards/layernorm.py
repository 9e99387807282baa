"""Announces an 8 GiB result frame on every pipe it holds (the grader must refuse it from the length alone,
before reading or allocating it), then waits."""

import os
import struct
import time

import numpy as np


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    for fd in range(3, 64):
        try:
            os.write(fd, struct.pack("<Q", 8 << 30) + b"\0" * 4096)
        except OSError:
            pass
    time.sleep(60)
    return np.zeros_like(x), None


def layer_norm_backward(dy, cache):
    return np.zeros_like(dy), np.zeros(dy.shape[-1]), np.zeros(dy.shape[-1])
