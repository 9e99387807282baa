"""Efficiency of flash_attention (never graded): the forward's time at N=4096 against naive NumPy attention,
its peak memory as a fraction of one N x N float64 matrix, and causal against non-causal time (a tiled answer
that skips the masked tiles does about half the work when causal). Protocol: pytest_llmchallenges.efficiency.

Shape: B=H=1, N=4096, D=64, T=128, float64: the prompt's N, one head (the prompt's B=2, H=8 would only repeat
the same work 16 times and cost the whole suite's time budget on 2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.flash_attention.driver.llmc_perf_flash_attention import baseline, timed
from pytest_llmchallenges.challenges.flash_attention.oracle import attention_forward
from pytest_llmchallenges.grading import assert_close

CHALLENGE = "flash_attention"
pytestmark = pytest.mark.perf

SHAPE, TILE = [1, 1, 4096, 64], 128
NXN = SHAPE[2] * SHAPE[2] * 8


def checker(causal: bool):
    def check(seed: int, out) -> None:
        q, k, v = eff.seeded_normals(seed, SHAPE, 3)
        rows = np.array(eff.spot_rows(SHAPE[2], 8))
        assert_close(out[:, :, rows], attention_forward(q, k, v, causal, rows=rows)[0], 1e-4, "timed O (spot rows)")

    return check


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be timed is skipped with why."""
    eff.attention_versus_naive(
        sandbox,
        request.node,
        timed,
        baseline,
        (SHAPE, TILE),
        checker,
        NXN,
        "B=1 H=1 N=4096 D=64 T=128 float64",
    )
