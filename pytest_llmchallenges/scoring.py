"""Scores and letter grades, as the report schema defines them."""

from __future__ import annotations

from .challenges import DIFFICULTY_WEIGHT

LETTERS = (
    (0.95, "A"),
    (0.90, "A-"),
    (0.85, "B+"),
    (0.80, "B"),
    (0.75, "B-"),
    (0.70, "C+"),
    (0.65, "C"),
    (0.60, "C-"),
    (0.50, "D"),
)
NOT_SCORED = "n/a"


def letter(score: float) -> str:
    for bound, grade in LETTERS:
        if score >= bound - 1e-12:
            return grade
    return "F"


def challenge_score(passed: int, failed: int) -> float | None:
    """passed / (passed + failed); None when nothing ran (all skipped)."""
    return passed / (passed + failed) if passed + failed else None


def overall_score(scores: list[tuple[str, float | None]]) -> float | None:
    """Difficulty-weighted mean over the challenges that were graded: (difficulty, score) pairs."""
    graded = [(DIFFICULTY_WEIGHT[d], s) for d, s in scores if s is not None]
    total = sum(w for w, _ in graded)
    return sum(w * s for w, s in graded) / total if total else None
