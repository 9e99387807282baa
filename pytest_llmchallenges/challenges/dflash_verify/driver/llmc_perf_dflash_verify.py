"""Efficiency drivers for dflash_verify: target-model calls per verification cycle and tokens gained per call.

A run is speculative generation of ``n_new`` tokens from a seeded prompt, one cycle per draft tree; the trees
are drafted here from the target's true greedy continuation: a chain of right tokens whose length varies by
seed, each node with a wrong sibling. Calls are counted where the grader's target model answers the
submission (the ``passes`` of llmc_dflash_target: one per call that runs the model, however many rows it
batches; a call answered from hidden states the model returned earlier runs nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry

    from .llmc_dflash_verifier import Verifier
    from .llmc_drive_dflash_verify import ROLES
except ImportError:  # inside the child, where this folder is on sys.path
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_dflash_verifier import Verifier  # type: ignore[no-redef]
    from llmc_drive_dflash_verify import ROLES  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]

__all__ = ["ROLES", "draft", "prompt_of", "timed"]


def prompt_of(seed: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(1, 1000, size=5)]


def draft(rng: np.random.Generator, truth: list[int], depth: int) -> tuple[list[int], list[int]]:
    """A right chain of ``rng``-chosen length up to ``depth`` (then a wrong node), each with a wrong sibling."""
    right = int(rng.integers(0, depth + 1))
    tokens: list[int] = []
    parents: list[int] = []
    parent = -1
    for d in range(depth):
        good = truth[d] if d < right else (truth[d] + 1 + int(rng.integers(998))) % 1000
        wrong = (truth[d] + 1 + int(rng.integers(998))) % 1000
        tokens += [good, wrong]
        parents += [parent, parent]
        parent = len(tokens) - 2
    return tokens, parents


@entry
def timed(sub: Answer, seeds: list[int], spec: dict[str, Any]) -> dict[str, Any]:
    """Per seed: the generated sequence and, per cycle, the target calls it made and the tokens it appended."""
    from llmc_perf_common import timed_reps  # child-only (it imports the toolkit by its plain names)

    verifier = Verifier(sub, spec["target"])
    if verifier.verify is None:
        raise NotImplementedError("no verification function to count cycles of (only a generation loop)")
    state = verifier.adapter.state  # state.passes: forward passes of the grader's model (the driver counts)
    lm, n_new, depth = verifier.adapter.lm, spec["n_new"], spec["depth"]

    def make(seed: int) -> tuple:
        prompt = prompt_of(seed)
        truth = lm.greedy(prompt, n_new + depth + 1)
        return prompt, truth, np.random.default_rng(seed)

    def run(prompt: list[int], truth: list[int], rng: np.random.Generator) -> dict[str, Any]:
        seq, cycles = list(prompt), []
        while len(seq) - len(prompt) < n_new:
            got = len(seq) - len(prompt)
            tokens, parents = draft(rng, truth[got:], depth)
            before = state.passes
            result = verifier.cycle(seq, tokens, parents)
            cycles.append([state.passes - before, len(result["appended"])])
            if not result["appended"]:
                break
            seq += result["appended"]
        return {"sequence": seq, "cycles": cycles}

    return {"outputs": timed_reps(sub, seeds, make, run)}
