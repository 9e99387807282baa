"""Efficiency of dflash_verify (never graded here): target-model calls per verification cycle (the prompt
asks for one forward pass over the whole tree) and tokens appended per target call, over speculative runs of
12 new tokens with trees of depth 4 (a right chain of random length, each node with a wrong sibling); also the
time per cycle on the grader's MinimalLM. Protocol: pytest_llmchallenges.efficiency. Each run's sequence is
checked against greedy decoding. (Whether one pass per cycle holds is graded by the dflash suite itself.)
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.dflash_verify.driver import llmc_perf_dflash_verify as perf
from pytest_llmchallenges.child.llmc_models import MinimalLM

CHALLENGE = "dflash_verify"
pytestmark = pytest.mark.perf

TARGET = {"vocab_size": 1000, "d_model": 64, "n_heads": 4, "seed": 0}
SPEC: dict[str, Any] = {"target": TARGET, "n_new": 12, "depth": 4}


def check(seed: int, out: dict, lm: MinimalLM, cycles: list) -> None:
    prompt = perf.prompt_of(seed)
    want = prompt + lm.greedy(prompt, SPEC["n_new"])
    got = [int(t) for t in out["sequence"]][: len(want)]
    assert got == want, f"generated {got[len(prompt) :]}, greedy decoding gives {want[len(prompt) :]}"
    cycles.extend(tuple(c) for c in out["cycles"])


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be measured is skipped with why."""
    lm, cycles = MinimalLM(**TARGET), []
    arm = eff.Arm("run", perf.timed, (SPEC,), check=lambda s, o: check(s, o, lm, cycles))
    try:
        s = eff.measure(sandbox, [arm], reps_per_call=5, max_rounds=1)
    except eff.NotMeasured as exc:
        eff.not_measured(request.node, str(exc))
    calls = sum(c for c, _ in cycles)
    per_cycle = calls / len(cycles)
    gained = sum(n for _, n in cycles) / calls if calls else 0.0
    eff.record(
        request.node,
        {
            "summary": f"{per_cycle:.2g} target pass/cycle, {gained:.2g} tokens/pass",
            "target_calls_per_cycle": round(per_cycle, 2),
            "max_target_calls_per_cycle": max(c for c, _ in cycles),
            "tokens_per_target_call": round(gained, 2),
            "cycles": len(cycles),
            "cycle_ms": round(1000 * s["run"].median / (len(cycles) / len(s["run"].seconds)), 2),
            **eff.timing_figures("run", s["run"]),
            "shape": "12 new tokens per run, trees of depth 4 with a wrong sibling per node, MinimalLM target",
        },
    )
