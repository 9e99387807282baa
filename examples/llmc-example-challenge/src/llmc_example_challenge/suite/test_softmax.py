"""Grading tests of the softmax challenge: against the float64 oracle, on large logits, along other axes."""

from __future__ import annotations

import numpy as np

from llmc_example_challenge.driver.llmc_drive_softmax import softmax_of
from llmc_example_challenge.oracle import softmax
from pytest_llmchallenges.grading import assert_close, wrong

CHALLENGE = "softmax"
RTOL = 1e-9


def test_matches_oracle(sandbox, rng) -> None:
    x = rng.standard_normal((4, 7))
    got = sandbox.run(softmax_of, x).value
    assert_close(got, softmax(x), RTOL, "softmax of a (4, 7) array")


def test_large_logits(sandbox, rng) -> None:
    x = rng.standard_normal((3, 5)) * 10 + 1000.0
    got = sandbox.run(softmax_of, x).value
    if not np.all(np.isfinite(got)):
        wrong("softmax of logits near 1000 is not finite (exp overflows without subtracting the maximum)")
    assert_close(got, softmax(x), RTOL, "softmax of logits near 1000")


def test_other_axis(sandbox, rng) -> None:
    x = rng.standard_normal((2, 6, 3))
    got = sandbox.run(softmax_of, x, axis=1).value
    assert_close(got, softmax(x, axis=1), RTOL, "softmax along axis 1 of a (2, 6, 3) array")
