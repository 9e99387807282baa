"""Efficiency drivers for flash_attention: timed forward of the submission and of the naive baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.flash_attention.driver.llmc_drive_flash_attention import (
        ROLES,
        attention_forward,
        find_output,
        seeded_inputs,
    )
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import timed_reps
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_drive_flash_attention import ROLES, attention_forward, find_output, seeded_inputs  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_perf_common import timed_reps  # type: ignore[no-redef]

__all__ = ["ROLES", "baseline", "timed"]


@entry
def timed(
    sub: Answer, seeds: list[int], shape: list[int], tile_size: int, causal: bool, memory: bool = False
) -> dict[str, Any]:
    """The submission's forward on fresh (B, H, N, D) float64 inputs per seed; outputs as float64."""
    fwd = attention_forward(sub)

    def run(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return find_output(fwd(q, k, v, tile_size, causal)[0], q.shape, fwd.label)

    outs = timed_reps(sub, seeds, lambda s: inputs(s, shape), run, memory, inputs(0, [1, 1, 256, shape[-1]]))
    return {"outputs": [np.asarray(o, dtype=np.float64) for o in outs]}


def inputs(seed: int, shape: list[int]) -> tuple[np.ndarray, ...]:
    return tuple(seeded_inputs(seed, tuple(shape), "float64"))


@entry
def baseline(
    sub: Answer, seeds: list[int], shape: list[int], tile_size: int, causal: bool, memory: bool = False
) -> dict[str, Any]:
    """The naive full-matrix NumPy forward on the same kind of inputs (the submission is not imported)."""

    def run(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return naive_attention(q, k, v, causal)

    timed_reps(sub, seeds, lambda s: inputs(s, shape), run, memory, inputs(0, [1, 1, 256, shape[-1]]))
    return {"outputs": [None] * len(seeds)}  # trusted: not sent back


# The baseline: plain vectorised NumPy, what a competent answer written the simple way costs. It runs in
# the same kind of sandboxed child as the submission and never imports its code.


def naive_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool) -> np.ndarray:
    """softmax(Q K^T / sqrt(D) + mask) V with one full (N, N) score matrix per head."""
    s = Q @ K.swapaxes(-1, -2) / np.sqrt(Q.shape[-1])
    if causal:
        n = Q.shape[-2]
        s = np.where(np.tri(n, dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ V
