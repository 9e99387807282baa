"""Scores and letters (scoring.py), in process: the rules the reports, merge and the view share."""

from __future__ import annotations

import pytest

from pytest_llmchallenges import scoring
from pytest_llmchallenges.challenges import DIFFICULTY_WEIGHT


@pytest.mark.parametrize(
    ("score", "grade"),
    [(1.0, "A"), (0.95, "A"), (0.9499, "A-"), (0.9, "A-"), (0.85, "B+"), (0.8, "B"), (0.75, "B-"),
     (0.7, "C+"), (0.65, "C"), (0.6, "C-"), (0.5, "D"), (0.4999, "F"), (0.0, "F")],
)  # fmt: skip
def test_letter_bounds_are_inclusive(score: float, grade: str) -> None:
    assert scoring.letter(score) == grade


def test_letter_forgives_float_noise_at_a_bound() -> None:
    assert scoring.letter(19 / 20) == "A"  # 0.95 as computed from counts
    assert scoring.letter(0.95 - 1e-13) == "A"


@pytest.mark.parametrize(("passed", "failed", "score"), [(3, 1, 0.75), (0, 2, 0.0), (5, 0, 1.0), (0, 0, None)])
def test_challenge_score_is_passed_over_graded(passed: int, failed: int, score: float | None) -> None:
    assert scoring.challenge_score(passed, failed) == score


@pytest.mark.parametrize(
    ("nodeid", "efficiency"),
    [
        ("pytest_llmchallenges/challenges/kv/suite/test_efficiency_kv.py::test_speed[m]", True),
        ("pytest_llmchallenges/challenges/kv/suite/test_kv.py::test_efficiency_like_name[m]", False),
        ("test_kv.py::test_x", False),
    ],
)
def test_efficiency_tests_are_known_by_their_module(nodeid: str, efficiency: bool) -> None:
    assert scoring.is_efficiency(nodeid) is efficiency


@pytest.mark.parametrize(
    ("categories", "unanswered"),
    [
        (["missing"], True),
        (["missing", "capability", "missing"], True),  # a GPU challenge not answered, on a CPU machine
        (["capability"], False),  # nothing says missing: not run, not unanswered
        (["missing", "wrong"], False),
        (["", "missing"], False),  # one test passed: answered
        ([], False),
    ],
)
def test_unanswered_only_when_every_runnable_test_says_missing(categories: list[str], unanswered: bool) -> None:
    assert scoring.is_unanswered(categories) is unanswered


@pytest.mark.parametrize(
    ("status", "score", "mode", "counted"),
    [
        ("missing", None, "all", 0.0),
        ("missing", None, "answered", None),
        ("graded", 0.5, "all", 0.5),
        ("graded", 0.5, "answered", 0.5),
        ("partial", None, "all", None),  # nothing graded (capabilities): left out of either mean
    ],
)
def test_counted_scores_a_missing_challenge_by_mode(
    status: str, score: float | None, mode: str, counted: float | None
) -> None:
    assert scoring.counted(status, score, mode) == counted


def test_overall_score_is_weighted_by_difficulty() -> None:
    scores = [("medium", 1.0), ("hard", 0.0), ("research", 0.5), ("extra_hard", None)]
    weights = DIFFICULTY_WEIGHT["medium"] + DIFFICULTY_WEIGHT["hard"] + DIFFICULTY_WEIGHT["research"]
    expect = (DIFFICULTY_WEIGHT["medium"] * 1.0 + DIFFICULTY_WEIGHT["research"] * 0.5) / weights
    assert scoring.overall_score(scores) == pytest.approx(expect)


def test_overall_score_is_none_when_nothing_scored() -> None:
    assert scoring.overall_score([]) is None
    assert scoring.overall_score([("medium", None), ("hard", None)]) is None


def test_answering_less_never_ranks_higher_in_mode_all() -> None:
    """The reason for mode "all": one perfect answer and seven missing ranks below eight half-right ones."""
    few = [("medium", scoring.counted("graded", 1.0, "all"))] + [("hard", scoring.counted("missing", None, "all"))] * 7
    many = [("medium", 0.5)] + [("hard", 0.5)] * 7
    assert scoring.overall_score(few) < scoring.overall_score(many)


def test_tally_counts_a_grader_fault_nowhere() -> None:
    """One tally for a run's report and for merge's rescoring: a grader fault is ours, in no count or total."""
    tests = [("passed", ""), ("failed", "wrong"), ("failed", "grader"), ("skipped", "capability")]
    assert scoring.tally(tests) == {"passed": 1, "failed": 1, "skipped": 1, "graded": 2, "total": 3}


def test_status_missing_partial_graded_na() -> None:
    assert scoring.status(["missing", "capability", "grader"], 0, partial=True) == "missing"
    assert scoring.status(["", "capability"], 1, partial=True) == "partial"
    assert scoring.status(["", "wrong"], 2, partial=False) == "graded"
    assert scoring.status(["capability"], 0, partial=False) == "n/a"
