"""An example third-party challenge: one folder holding its table row (here), prompt, suite, oracle and driver."""

from __future__ import annotations

from pathlib import Path

from pytest_llmchallenges.challenges import Challenge
from pytest_llmchallenges.registry import packaged

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parents[1] / "reference"  # in a checkout of the example (not part of an installed wheel)


def challenge() -> Challenge:
    """The challenge's row: what the entry point and the hook (plugin.py) both hand to pytest-llmchallenges."""
    return packaged(
        HERE,
        "softmax",
        "medium",
        "Numerically stable softmax over any axis (NumPy)",
        timeout=20.0,
        not_graded=("explanation of why subtracting the maximum changes nothing mathematically",),
        reference=REFERENCE if REFERENCE.is_dir() else None,
    )
