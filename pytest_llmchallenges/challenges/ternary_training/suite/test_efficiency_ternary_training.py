"""Efficiency of ternary_training (never graded): held-out perplexity and bits per byte of the submission's
trained model, evaluated by the grader, beside what the submission reports (the grading suite shows those).

Only possible where the folder holds the trained weights: answers train for minutes to hours and the grader
does not re-run that. Evaluating a saved checkpoint needs the submission's model and tokenizer rebuilt around
it; that is not implemented yet, so this test reports "n/a" with the reason in every case (no weights saved,
or weights found but not evaluated), rather than a figure nobody measured.
"""

from __future__ import annotations

import pytest

from pytest_llmchallenges import efficiency as eff

CHALLENGE = "ternary_training"
pytestmark = pytest.mark.perf

WEIGHT_SUFFIXES = (".npz", ".npy", ".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".pkl", ".gguf")


def test_efficiency(challenge_dir, request):
    """Measured, not graded: "n/a" with the reason until saved checkpoints are evaluated."""
    found = sorted(
        p.relative_to(challenge_dir).as_posix()
        for p in challenge_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES
    )
    if not found:
        eff.not_measured(request.node, "no trained weights saved in the folder (reported figures are not re-run)")
    eff.not_measured(
        request.node, f"weights found ({', '.join(found[:3])}) but evaluating checkpoints is not implemented"
    )
