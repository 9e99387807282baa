"""Efficiency of flash_attention_bwd (never graded): the backward's time against the naive full-matrix NumPy
backward, its peak memory as a fraction of one N x N float64 matrix, and causal against non-causal time.
Protocol: pytest_llmchallenges.efficiency.

Only the backward is timed (the forward that fills its cache runs before the lap). Shape: B=H=1, N=2048,
D=64, T=128, float64: the naive backward holds several N x N matrices, and at the prompt's N=4096 it alone
would take most of the suite's time budget on 2 cores; N=2048 still shows the tiling (N x N = 32 MiB).
Checks of each timed output: dQ at rows chosen after it arrived; dK and dV in full for a random third.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.flash_attention_bwd.driver.llmc_perf_flash_attention_bwd import baseline, timed
from pytest_llmchallenges.challenges.flash_attention_bwd.oracle import attention_backward, attention_dq_rows
from pytest_llmchallenges.grading import assert_close

CHALLENGE = "flash_attention_bwd"
pytestmark = pytest.mark.perf

SHAPE, TILE = [1, 1, 2048, 64], 128
NXN = SHAPE[2] * SHAPE[2] * 8
RTOL = 1e-4


def checker(causal: bool):
    def check(seed: int, out) -> None:
        q, k, v, do = eff.seeded_normals(seed, SHAPE, 4)
        rows = np.array(eff.spot_rows(SHAPE[2], 8))
        expected = attention_dq_rows(q, k, v, do, rows, causal)
        assert_close(out["dQ"][:, :, rows], expected, RTOL, "timed dQ (spot rows)")
        if secrets.randbelow(3) == 0:
            _, dk, dv = attention_backward(q, k, v, do, causal)
            assert_close(out["dK"], dk, RTOL, "timed dK")
            assert_close(out["dV"], dv, RTOL, "timed dV")

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
        "backward only, B=1 H=1 N=2048 D=64 T=128 float64",
    )
