"""Efficiency drivers for backwards (layer norm): forward + backward timed together, for the submission and
for a vectorised NumPy baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.backwards.driver.llmc_drive_backwards import ROLES, _adapter
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import timed_reps
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_drive_backwards import ROLES, _adapter  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_perf_common import timed_reps  # type: ignore[no-redef]

__all__ = ["ROLES", "baseline", "inputs", "timed"]

EPS = 1e-5


def inputs(seed: int, shape: list[int]) -> tuple[np.ndarray, ...]:
    """x, gamma (D,), beta (D,), dy (x's shape): the same generator and order as the grading side."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(shape))
    gamma, beta = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    return x, gamma, beta, rng.standard_normal(tuple(shape))


@entry
def timed(sub: Answer, seeds: list[int], shape: list[int], memory: bool = False) -> dict[str, Any]:
    """The submission's forward then backward per seed; dx, dgamma, dbeta as float64."""
    adapter = _adapter(sub)

    def run(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dy: np.ndarray) -> dict[str, Any]:
        _, state = adapter.forward(x, gamma, beta, EPS)
        grads = adapter.backward(dy, state)
        return {k: np.asarray(grads[k], dtype=np.float64) for k in ("dx", "dgamma", "dbeta")}

    return {"outputs": timed_reps(sub, seeds, lambda s: inputs(s, shape), run, memory, inputs(0, [2, 4, shape[-1]]))}


@entry
def baseline(sub: Answer, seeds: list[int], shape: list[int], memory: bool = False) -> dict[str, Any]:
    """The vectorised NumPy forward + backward (the submission is not imported)."""

    def run(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dy: np.ndarray) -> tuple:
        return layer_norm_fwd_bwd(x, gamma, beta, dy, EPS)

    timed_reps(sub, seeds, lambda s: inputs(s, shape), run, memory, inputs(0, [2, 4, shape[-1]]))
    return {"outputs": [None] * len(seeds)}


# The baseline: plain vectorised NumPy, what a competent answer written the simple way costs. It runs in
# the same kind of sandboxed child as the submission and never imports its code.


def layer_norm_fwd_bwd(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dy: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y and (dx, dgamma, dbeta) of layer norm over the last axis, vectorised, keeping xhat for the backward."""
    mu = x.mean(axis=-1, keepdims=True)
    xmu = x - mu
    inv = 1.0 / np.sqrt((xmu**2).mean(axis=-1, keepdims=True) + eps)
    xhat = xmu * inv
    y = gamma * xhat + beta
    rows = tuple(range(x.ndim - 1))
    dgamma, dbeta = (dy * xhat).sum(axis=rows), dy.sum(axis=rows)
    g = dy * gamma
    dx = inv * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return y, dx, dgamma, dbeta
