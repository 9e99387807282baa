"""Efficiency drivers for beam_search: wall time of one B x K search of ``max_new_tokens`` on the grader's
MinimalLM, with the number of model calls and the sequences scored (the batch sizes the search used).

The model is the grader's (through the beam_search driver's installation), so its cost is the same for every
submission; what differs is how many calls and rows the search asks for and the search's own overhead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from pytest_llmchallenges.challenges.beam_search.driver import llmc_drive_beam_search as drive
    from pytest_llmchallenges.child.llmc_api import Answer
    from pytest_llmchallenges.child.llmc_entry import entry
    from pytest_llmchallenges.child.llmc_perf_common import timed_reps
except ImportError:  # inside the child, where this folder and the toolkit's are on sys.path
    import llmc_drive_beam_search as drive  # type: ignore[no-redef]
    from llmc_api import Answer  # type: ignore[no-redef]
    from llmc_entry import entry  # type: ignore[no-redef]
    from llmc_perf_common import timed_reps  # type: ignore[no-redef]

ROLES = drive.ROLES
__all__ = ["ROLES", "prompts", "timed"]

MODEL = {"kind": "minimal"}


def prompts(seed: int, batch: int) -> list[list[int]]:
    """``batch`` prompts of lengths 3, 5, 7, ... with tokens in [1, 1000) (the same on the grading side)."""
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(1, 1000, size=3 + 2 * i)] for i in range(batch)]


@entry
def timed(sub: Answer, seeds: list[int], spec: dict[str, Any]) -> dict[str, Any]:
    """One search per seed: {beams, calls, rows} each."""
    drive.add_folder_to_path(sub)
    owner, method = drive.find_search(sub)
    first = prompts(0, 2)
    view = drive.ModelView(drive.make_model(MODEL, first), first)
    inst = drive.install(sub, view, owner)
    model_arg = inst.instance if inst.instance is not None else drive.generic_model(view)

    def job(ps: list[list[int]], steps: int) -> dict[str, Any]:
        return {
            "prompts": ps, "beam_width": spec["beam_width"], "max_new_tokens": steps, "alpha": spec["alpha"],
            "eos_token_id": spec["eos_token_id"], "model": MODEL,
        }  # fmt: skip

    def run(ps: list[list[int]]) -> dict[str, Any]:
        out = drive.run_job(sub, view, inst, model_arg, owner, method, job(ps, spec["max_new_tokens"]))
        return {k: out[k] for k in ("beams", "calls", "rows", "rows_without_prompt")}

    outs = timed_reps(sub, seeds, lambda s: (prompts(s, spec["batch"]),), run, warm_inputs=(first,))
    return {"outputs": outs}
