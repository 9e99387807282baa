"""Efficiency of backwards (never graded): layer norm forward + backward at a large shape, as a ratio to a
vectorised NumPy baseline that keeps xhat for the backward. Protocol: pytest_llmchallenges.efficiency.

Shape: (B, T, D) = (8, 128, 1024) float64, 8 MiB per activation: large enough that memory traffic, which is what
the prompt's "reuse intermediates" saves, dominates over Python overhead; small enough for the time budget.
Every timed output is checked in full against the float64 oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_llmchallenges import efficiency as eff
from pytest_llmchallenges.challenges.backwards.driver.llmc_perf_backwards import baseline, timed
from pytest_llmchallenges.challenges.backwards.oracle import layer_norm_grads
from pytest_llmchallenges.grading import assert_close

CHALLENGE = "backwards"
pytestmark = pytest.mark.perf

SHAPE = [8, 128, 1024]  # (B, T, D): the prompt's layout; 2-D inputs break some correct answers
RTOL = 1e-6


def check(seed: int, out) -> None:
    rng = np.random.default_rng(seed)  # llmc_perf_backwards.inputs: same generator, same order
    x = rng.standard_normal(tuple(SHAPE))
    gamma = rng.standard_normal(SHAPE[-1])
    rng.standard_normal(SHAPE[-1])  # beta: no part of the gradients
    dy = rng.standard_normal(tuple(SHAPE))
    for name, expected in zip(("dx", "dgamma", "dbeta"), layer_norm_grads(x, gamma, dy, 1e-5), strict=True):
        assert_close(out[name], expected, RTOL, f"timed {name}")


def test_efficiency(sandbox, request):
    """Measured, not graded: figures on the report; a submission that cannot be timed is skipped with why."""
    arm = eff.Arm("fwdbwd", timed, (SHAPE,), check=check, memory=True)
    base = eff.Arm("numpy", baseline, (SHAPE,), trusted=True, memory=True)
    s, figures = eff.versus(sandbox, request.node, arm, base, label="NumPy")
    figures |= {
        "peak_mib": round((s["fwdbwd"].memory_peak or 0) / 2**20, 1),
        "numpy_peak_mib": round((s["numpy"].memory_peak or 0) / 2**20, 1),
        "shape": "forward + backward, (B, T, D) = (8, 128, 1024) float64",
    }
    eff.record(request.node, figures)
