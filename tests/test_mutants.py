"""Meta-tests: every mutant is caught by the test meant to catch it, and every grading test catches one.

All mutants of a challenge are graded in one subprocess run (they form one bench folder), then each mutant
is checked as its own test case, so a failure names the mutant and what it should have tripped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import mutants as mutants_mod
from tests.grading_run import GradingRun, grade, suite_file

CHALLENGES = mutants_mod.challenges_with_mutants()
CASES = [(c, m.name) for c in CHALLENGES for m in mutants_mod.load(c)[0]]


def suite_tests(challenge: str) -> set[str]:
    tree = ast.parse(suite_file(challenge).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


class _GradedMutants(dict):
    """Grades a challenge's whole mutant bench on first use, then answers from memory."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.factory = factory

    def __missing__(self, challenge: str) -> GradingRun:
        bench = self.factory.mktemp(f"mutants-{challenge}")
        subs = bench / "bench"
        for m in mutants_mod.load(challenge)[0]:
            mutants_mod.materialise(m, subs)
        self[challenge] = grade([subs], bench, suites=[challenge], extra=["-n", "2"])
        return self[challenge]


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GradingRun]:
    return _GradedMutants(tmp_path_factory)


@pytest.mark.parametrize(("challenge", "mutant"), CASES, ids=[f"{c}-{m}" for c, m in CASES])
def test_mutant_is_caught(challenge: str, mutant: str, graded: dict[str, GradingRun]) -> None:
    spec = next(m for m in mutants_mod.load(challenge)[0] if m.name == mutant)
    run = graded[challenge]
    results = run.outcomes(mutant)
    assert results, f"mutant {mutant} was not graded at all:\n{run.stdout[-3000:]}"
    for test in spec.catches:
        assert test in results, f"{test} did not run on mutant {mutant} (tests run: {sorted(results)})"
        outcome, category, message = results[test]
        if outcome == "skipped" and message.startswith("needs "):
            pytest.skip(f"{test} needs a capability absent here: {message}")
        assert outcome == "failed", f"mutant {mutant} ({spec.why}) was not caught by {test}: {outcome}"
        if spec.category:
            assert category == spec.category, (
                f"{test} failed mutant {mutant} as {category}, not {spec.category}: {message}"
            )


@pytest.mark.parametrize("challenge", CHALLENGES)
def test_every_grading_test_is_proven(challenge: str) -> None:
    """A grading test that no mutant fails cannot be shown to discriminate: list it or explain it."""
    mutants, unproven = mutants_mod.load(challenge)
    caught = {t for m in mutants for t in m.catches}
    missing = suite_tests(challenge) - caught - set(unproven)
    assert not missing, f"{challenge}: grading tests no mutant is declared to fail: {sorted(missing)}"
    stale = set(unproven) - suite_tests(challenge)
    assert not stale, f"{challenge}: [_meta.unproven] names tests that do not exist: {sorted(stale)}"


def test_mutant_edits_apply(tmp_path: Path) -> None:
    """Every edit still matches the reference exactly once (a reference change must not disarm a mutant)."""
    for challenge in CHALLENGES:
        for m in mutants_mod.load(challenge)[0]:
            mutants_mod.materialise(m, tmp_path / challenge)
