"""Reads what must stay out of reach (a canary file, the reference, the oracles, the grader's environment
and command line, other processes' /proc), by open, os.open, a shell and /proc/<pid>/root; answers
correctly only if any of that worked, else with zeros."""

import glob
import os
import subprocess

import numpy as np

CANARY = "/tmp/llmc-hostile-canary.txt"


def _reads(path):
    out = []
    for how in ("open", "os.open", "cat"):
        try:
            if how == "open":
                out.append(open(path, "rb").read(4096))
            elif how == "os.open":
                out.append(os.read(os.open(path, os.O_RDONLY), 4096))
            else:
                out.append(subprocess.run(["cat", path], capture_output=True, timeout=5).stdout)
        except Exception:
            pass
    return [x for x in out if x]


_DONE = []


def _cheat_worked():
    if not _DONE:
        _DONE.append(_try())
    return _DONE[0]


def _try():
    hits = _reads(CANARY)
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        hits += [x for x in _reads(f"/proc/{pid}/cmdline") if b"--llm-" in x or b"-m\0pytest" in x]
        hits += [x for x in _reads(f"/proc/{pid}/environ") if b"PYTEST" in x]
        hits += _reads(f"/proc/{pid}/root{CANARY}")
    for pattern in ("/work/*/reference/backwards/*.py", "/*/*/*/reference/backwards/*.py", "/tmp/*/reference/*/*.py",
                    "/*/*/*/pytest_llmchallenges/challenges/*/oracle.py",
                    "/*/*/*/pytest_llmchallenges/challenges/*/suite/*.py",
                    "/*/*/*/*/*/*/pytest_llmchallenges/challenges/*/oracle.py", "/llmc/drivers/*/../../*/oracle.py"):
        for path in glob.glob(pattern)[:20]:
            hits += _reads(path)
    if any(k.startswith(("PYTEST", "LLM")) for k in os.environ):
        hits.append(b"environment")
    return bool(hits)


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
