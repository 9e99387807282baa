"""Scores and letter grades, as the report schema defines them.

The overall score is over every challenge of the run, a missing answer scoring 0 (``--llm-score=all``, the
default), so that answering less never ranks higher; ``--llm-score=answered`` ranks on answered challenges only.
A challenge with nothing graded (all its tests skipped, e.g. for a capability this machine lacks) has no score
and is left out of either mean.
"""

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
NOT_SCORED = "-"
SCORE_MODES = ("all", "answered")


def letter(score: float) -> str:
    for bound, grade in LETTERS:
        if score >= bound - 1e-12:
            return grade
    return "F"


def challenge_score(passed: int, failed: int) -> float | None:
    """passed / (passed + failed); None when nothing ran (all skipped)."""
    return passed / (passed + failed) if passed + failed else None


def is_efficiency(nodeid: str) -> bool:
    """A test of the efficiency axis (a suite's test_efficiency_<name>.py): it records figures and is never
    counted in the correctness score, the counts or the coverage."""
    return "test_efficiency_" in nodeid.split("::", 1)[0]


def is_unanswered(categories: list[str]) -> bool:
    """No answer: every test this machine could run says ``missing`` (the others lack a capability), so a
    missing GPU challenge on a CPU machine is missing, not partial."""
    return "missing" in categories and all(c in ("missing", "capability") for c in categories)


def tally(tests: list[tuple[str, str]]) -> dict[str, int]:
    """passed, failed, skipped, graded and total of a challenge's correctness tests, given as (outcome,
    category) pairs: a grader fault is ours, so it counts nowhere."""
    real = [outcome for outcome, cat in tests if cat != "grader"]
    passed, failed = real.count("passed"), real.count("failed")
    return {"passed": passed, "failed": failed, "skipped": real.count("skipped"), "graded": passed + failed,
            "total": len(real)}  # fmt: skip


def status(categories: list[str], graded: int, partial: bool) -> str:
    """missing (nothing answered), partial (a capability left tests unrun), graded, or n/a (nothing graded)."""
    real = [c for c in categories if c != "grader"]
    if is_unanswered(real):
        return "missing"
    if partial:
        return "partial"
    return "graded" if graded else "n/a"


def counted(status: str, score: float | None, mode: str) -> float | None:
    """What a challenge adds to the overall mean: a missing one 0 (mode "all") or nothing ("answered")."""
    if status == "missing":
        return 0.0 if mode == "all" else None
    return score


def overall_score(scores: list[tuple[str, float | None]]) -> float | None:
    """Difficulty-weighted mean of (difficulty, score) pairs, a None score left out; None when all are."""
    graded = [(DIFFICULTY_WEIGHT[d], s) for d, s in scores if s is not None]
    total = sum(w for w, _ in graded)
    return sum(w * s for w, s in graded) / total if total else None
