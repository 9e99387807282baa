"""Meta-test: the calibration corpus of real model answers gets the verdicts a careful engineer would sign.

``../shared/corpus`` (skipped where absent) holds real answers to the eight prompts; its README lists facts
about each answer established by hand. ``tests/corpus_facts/<model>.toml`` writes those facts as data:

- ``passes``: tests that must pass (the correct properties the fact states);
- ``fails``: ``{test, category, message}``: a test that must fail with that category and a message matching
  the regex, which names the defect the fact states;
- ``status = "missing"``: a challenge the model never answered (scaffold files only).

Every answered challenge must also be driven: no test of it may fail as ``not_driven`` or ``interface``
(``driven_xfail`` marks a challenge where that still needs other work). The corpus is graded once per
session, in a subprocess, as a user would grade it. A fact that another piece of work must make
true is kept, marked ``xfail = "needs ..."`` (strict: the mark goes once that work is merged).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_llmchallenges.challenges import CHALLENGE_NAMES
from tests.grading_run import REPO, GradingRun, grade

CORPUS = REPO.parent / "shared" / "corpus"
FACTS = REPO / "tests" / "corpus_facts"
MODELS = sorted(p.stem for p in FACTS.glob("*.toml"))
NOT_DRIVEN = {"interface", "not_driven"}  # the grader could not call the answer (older reports: interface)


@dataclass(frozen=True)
class Fact:
    """One assertion about one answer: ``kind`` is passes | fails | missing | driven."""

    model: str
    challenge: str
    kind: str
    test: str = ""
    category: str = ""
    message: str = ""
    statement: str = ""
    xfail: str = ""

    @property
    def id(self) -> str:
        return "-".join(x for x in (self.model, self.challenge, self.kind, self.test) if x)


def _facts(model: str) -> list[Fact]:
    data: dict[str, Any] = tomllib.loads((FACTS / f"{model}.toml").read_text())
    out = []
    for challenge, spec in data.items():
        common = {"model": model, "challenge": challenge, "statement": spec.get("fact", "")}
        pending = spec.get("xfail", "")
        if spec.get("status") == "missing":
            out.append(Fact(kind="missing", xfail=pending, **common))
            continue
        for item in spec.get("passes", []):
            item = {"test": item} if isinstance(item, str) else item
            out.append(Fact(kind="passes", test=item["test"], xfail=item.get("xfail", pending), **common))
        for item in spec.get("fails", []):
            out.append(
                Fact(
                    kind="fails",
                    test=item["test"],
                    category=item["category"],
                    message=item["message"],
                    xfail=item.get("xfail", pending),
                    **common,
                )
            )
        out.append(Fact(kind="driven", xfail=spec.get("driven_xfail", ""), **common))
    return out


FACT_LIST = [f for m in MODELS for f in _facts(m)]


def _param(fact: Fact) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=fact.xfail)] if fact.xfail else []
    return pytest.param(fact, id=fact.id, marks=marks)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> GradingRun:
    """The whole corpus graded once, every suite, as in CI (``-n 2``: one run). ``LLMC_CORPUS_REPORT=path``
    checks an existing report of the corpus instead (the one bench/case_study.py reads, say)."""
    if not CORPUS.is_dir():
        pytest.skip(f"no calibration corpus at {CORPUS}")
    saved = os.environ.get("LLMC_CORPUS_REPORT")
    if saved:
        return GradingRun(0, f"(report read from {saved})", json.loads(Path(saved).read_text()))
    return grade([CORPUS], tmp_path_factory.mktemp("corpus"), suites=list(CHALLENGE_NAMES), extra=["-n", "2"])


def _challenge(run: GradingRun, model: str, challenge: str) -> dict[str, Any]:
    for sub in run.report["submissions"]:
        if sub["name"] == model:
            for entry in sub["challenges"]:
                if entry["name"] == challenge:
                    return entry
    raise AssertionError(f"{model}/{challenge} was not graded:\n{run.stdout[-3000:]}")


def _verdicts(entry: dict[str, Any], test: str) -> list[dict[str, Any]]:
    """The verdicts of one test; skips the fact where this machine lacks what the test needs (nvcc, GPU)."""
    found = [t for t in entry["tests"] if t["test"] == test]
    assert found, f"{test} did not run (tests run: {sorted({t['test'] for t in entry['tests']})})"
    lacking = [t for t in found if t["outcome"] == "skipped" and t["message"].startswith("needs ")]
    if lacking:
        pytest.skip(f"{test}: {lacking[0]['message']}")
    return found


def _line(t: dict[str, Any]) -> str:
    return f"{t['test']} {t['outcome']} [{t['category']}] {t['message'][:300]}"


@pytest.mark.parametrize("fact", [_param(f) for f in FACT_LIST])
def test_corpus_fact(fact: Fact, corpus: GradingRun) -> None:
    entry = _challenge(corpus, fact.model, fact.challenge)
    where = f"{fact.model}/{fact.challenge} ({fact.statement})"
    if fact.kind == "missing":
        assert entry["status"] == "missing", f"{where}: graded as {entry['status']}, expected missing"
    elif fact.kind == "passes":
        bad = [t for t in _verdicts(entry, fact.test) if t["outcome"] != "passed"]
        assert not bad, f"{where}: a correct property did not pass: " + " | ".join(map(_line, bad))
    elif fact.kind == "fails":
        got = _verdicts(entry, fact.test)
        hits = [
            t
            for t in got
            if t["outcome"] == "failed"
            and t["category"] == fact.category
            and re.search(fact.message, t["message"], re.IGNORECASE)
        ]
        assert hits, (
            f"{where}: expected {fact.test} to fail as {fact.category} with a message matching "
            f"/{fact.message}/; got " + " | ".join(map(_line, got))
        )
    else:
        undriven = [t for t in entry["tests"] if t["outcome"] == "failed" and t["category"] in NOT_DRIVEN]
        assert not undriven, f"{where}: not driven: " + " | ".join(map(_line, undriven[:3]))


def test_facts_name_existing_tests() -> None:
    """Every test a fact names exists in its suite (a renamed test must not silently disarm a fact)."""
    from tests.test_mutants import suite_tests

    unknown = [f.id for f in FACT_LIST if f.test and f.test not in suite_tests(f.challenge)]
    assert not unknown, f"facts naming tests that do not exist: {unknown}"
    assert MODELS, f"no corpus facts under {FACTS}"


def test_every_corpus_model_has_facts() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no calibration corpus at {CORPUS}")
    models = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    assert models == MODELS, f"corpus models {models}, fact files {MODELS}"


def test_fact_files_cover_their_challenges() -> None:
    """Each model's fact file speaks about every challenge folder it has (answered or not)."""
    if not CORPUS.is_dir():
        pytest.skip(f"no calibration corpus at {CORPUS}")
    for model in MODELS:
        folders = {p.name for p in (CORPUS / model).iterdir() if p.is_dir()}
        covered = {f.challenge for f in FACT_LIST if f.model == model}
        assert folders <= covered, f"{model}: no facts for {sorted(folders - covered)}"
