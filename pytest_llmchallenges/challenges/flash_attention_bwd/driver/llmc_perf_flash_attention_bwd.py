"""Efficiency drivers for flash_attention_bwd: the backward pass alone is timed (the forward that produces
its cache runs before the lap starts), for the submission and for the naive full-matrix baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.flash_attention.driver.llmc_drive_flash_attention import seeded_inputs
    from pytest_llmchallenges.challenges.flash_attention_bwd.driver.llmc_drive_flash_attention_bwd import (
        ROLES,
        flash_pair,
    )
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import timed_reps
except ImportError:  # inside the child, where the driver folders and the toolkit's are on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_drive_flash_attention import seeded_inputs  # type: ignore[no-redef]
    from llmc_drive_flash_attention_bwd import ROLES, flash_pair  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_perf_common import timed_reps  # type: ignore[no-redef]

__all__ = ["ROLES", "baseline", "timed"]

GRADS = ("dQ", "dK", "dV")


@entry
def timed(
    sub: Answer, seeds: list[int], shape: list[int], tile_size: int, causal: bool, memory: bool = False
) -> dict[str, Any]:
    """The submission's backward on fresh Q, K, V, dO per seed; the gradients as float64."""
    pair = flash_pair(sub)

    def make(seed: int, shape: list[int] = shape) -> tuple:
        q, k, v, do = seeded_inputs(seed, tuple(shape), "float64", count=4)
        return do, pair.forward(q, k, v, tile_size, causal)

    def run(do: np.ndarray, state: dict) -> dict[str, np.ndarray]:
        return pair.backward(do, state)

    outs = timed_reps(sub, seeds, make, run, memory, make(0, [1, 1, 256, shape[-1]]))
    return {"outputs": [{g: np.asarray(o[g], dtype=np.float64) for g in GRADS} for o in outs]}


@entry
def baseline(
    sub: Answer, seeds: list[int], shape: list[int], tile_size: int, causal: bool, memory: bool = False
) -> dict[str, Any]:
    """The naive backward through the full (N, N) matrices (the submission is not imported)."""

    def make(seed: int, shape: list[int] = shape) -> tuple:
        return tuple(seeded_inputs(seed, tuple(shape), "float64", count=4))

    def run(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray) -> tuple:
        return naive_attention_backward(q, k, v, do, causal)

    timed_reps(sub, seeds, make, run, memory, make(0, [1, 1, 256, shape[-1]]))
    return {"outputs": [None] * len(seeds)}


# The baseline: plain vectorised NumPy, what a competent answer written the simple way costs. It runs in
# the same kind of sandboxed child as the submission and never imports its code.


def naive_attention_backward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, dO: np.ndarray, causal: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dQ, dK, dV) through the full (N, N) probability matrix (recomputed, as a plain answer would)."""
    scale = 1.0 / np.sqrt(Q.shape[-1])
    s = Q @ K.swapaxes(-1, -2) * scale
    if causal:
        s = np.where(np.tri(Q.shape[-2], dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    dv = p.swapaxes(-1, -2) @ dO
    dp = dO @ V.swapaxes(-1, -2)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return scale * ds @ K, scale * ds.swapaxes(-1, -2) @ Q, dv
