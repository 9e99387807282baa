"""Efficiency of beam_search (never graded): wall time of a B=8, K=4 search on the grader's MinimalLM (vocab
1000, d_model 64), model calls per decoding step and sequences per call. A batched search makes one call per
step with all B x K live beams; a per-beam loop makes up to B x K calls per step. 16 new tokens, not the
prompt's 64: the grader's model answers every call from scratch (it cannot trust a submission's incremental
state), so a 64-token search costs about 5 s of model time alone; 16 tokens show the same calls and batches.
Protocol: pytest_llmchallenges.efficiency (no baseline: the model's cost is the grader's and the same for
every submission, so the time is comparable across submissions as it is).

EOS is a token id the model rarely ranks in a beam's top 2K, so that searches usually run all 64 steps; each
timed search's beams for one item, chosen after they arrived, are checked against the float64 oracle.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.beam_search.driver.llmc_perf_beam_search import timed
from pytest_llmchallenges.challenges.beam_search.driver.llmc_scripted import MinimalTokenModel
from pytest_llmchallenges.challenges.beam_search.oracle import AmbiguousScript, search_one
from pytest_llmchallenges.child.llmc_models import MinimalLM

CHALLENGE = "beam_search"
pytestmark = pytest.mark.perf

SPEC: dict[str, Any] = {"batch": 8, "beam_width": 4, "max_new_tokens": 16, "alpha": 0.6, "eos_token_id": 0}


def prompts(seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)  # llmc_perf_beam_search.prompts: same generator, same order
    return [[int(t) for t in rng.integers(1, 1000, size=3 + 2 * i)] for i in range(SPEC["batch"])]


def check(seed: int, out: dict, counts: list) -> None:
    counts.append((out["calls"], out["rows"]))
    ps = prompts(seed)
    i = secrets.randbelow(len(ps))
    model = MinimalTokenModel(MinimalLM(), ps)
    try:
        expected = search_one(
            lambda g: model.next_log_probs(i, g), SPEC["beam_width"], SPEC["max_new_tokens"], SPEC["alpha"],
            SPEC["eos_token_id"],
        )  # fmt: skip
    except AmbiguousScript:
        return  # a tie: any order is right
    got = out["beams"][i] if len(out["beams"]) == len(ps) else None
    assert got is not None, f"{len(out['beams'])} items returned, expected {len(ps)}"
    assert [list(t) for t, _ in got] == [t for t, _ in expected], f"item {i}: beams differ from the oracle's"


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be timed is skipped with why."""
    counts: list[tuple[int, int]] = []
    arm = eff.Arm("search", timed, (SPEC,), check=lambda seed, out: check(seed, out, counts), timeout=60)
    try:
        s = eff.measure(sandbox, [arm], reps_per_call=5, max_rounds=1)
    except eff.NotMeasured as exc:
        eff.not_measured(request.node, str(exc))
    calls = float(np.median([c for c, _ in counts]))
    rows = float(np.median([r / c for c, r in counts if c]))
    steps = SPEC["max_new_tokens"]
    eff.record(
        request.node,
        {
            "summary": f"{s['search'].median:.2f} s, {calls / steps:.2g} calls/step x {rows:.0f} seqs",
            **eff.timing_figures("search", s["search"]),
            "model_calls": calls,
            "calls_per_step": round(calls / steps, 2),
            "sequences_per_call": round(rows, 1),
            "shape": "B=8, K=4, 16 new tokens, alpha 0.6, MinimalLM vocab 1000 d_model 64",
        },
    )
