"""Write the grade matrix of docs/case-study.md: the calibration corpus as graded here, beside an LLM judge.

Usage: ``python bench/case_study.py REPORT.json [--corpus ../shared/corpus] [--doc docs/case-study.md]``.
REPORT.json is a grade report of the corpus (``pytest --llm-submission=../shared/corpus -n 2
--llm-report=REPORT.json``). The judge's letters are read from the table in the corpus README. Only the part
of the doc between the two ``matrix`` markers is rewritten; the prose around it stays as written.

A cell disagrees when one side calls the answer good (a judge letter of B- or better; every graded test
passed) and the other does not. Each disagreement gets one line, taken from the verdict's own message.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
GOOD_LETTERS = {"A+", "A", "A-", "B+", "B", "B-"}
# Which failure speaks for a cell: a demonstrated defect before a limit hit, a limit before "not driven".
CATEGORY_RANK = {
    "compile": 0, "wrong": 0, "error": 1, "crash": 1, "memory": 2, "timeout": 3, "interface": 4, "not_driven": 4,
    "grader": 5,
}  # fmt: skip


def suite_order(challenge: str) -> list[str]:
    """The suite's tests in definition order: the prompt's own tests come first in every suite."""
    path = REPO / "pytest_llmchallenges" / "suites" / f"test_{challenge}.py"
    if not path.exists():
        return []
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def judge_grades(readme: Path) -> tuple[list[str], dict[tuple[str, str], str]]:
    """The judge's table from the corpus README: (models in column order, {(model, challenge): letter})."""
    lines = readme.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## What the benchmark's LLM judge"))
    rows = [line for line in lines[start:] if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    models = header[1:]
    grades = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for model, letter in zip(models, cells[1:], strict=True):
            grades[(model, cells[0])] = letter
    return models, grades


def _entry(report: dict[str, Any], model: str, challenge: str) -> dict[str, Any] | None:
    for sub in report["submissions"]:
        if sub["name"] == model:
            return next((c for c in sub["challenges"] if c["name"] == challenge), None)
    return None


def _ours(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "not graded"
    if entry["status"] in ("missing", "n/a"):
        return str(entry["status"])
    failed = {t["category"] for t in entry["tests"] if t["outcome"] == "failed"} - {"grader"}
    if not entry["passed"] and failed == {"not_driven"}:
        return "not driven"
    return f"{entry['grade']} ({entry['passed']}/{entry['passed'] + entry['failed']})"


def _one_line(message: str, limit: int = 300) -> str:
    text = " ".join(message.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def disagreement(entry: dict[str, Any] | None, judge: str) -> str | None:
    """One line saying why the grader and the judge differ on this cell, or None when they agree."""
    judged_good = judge in GOOD_LETTERS
    if entry is None or entry["status"] == "missing":
        return "not answered (scaffold only); the judge graded it" if judge not in ("-", "") else None
    failed = [t for t in entry["tests"] if t["outcome"] == "failed"]
    if judged_good and failed:
        order = suite_order(entry["name"])

        def rank(t: dict[str, Any]) -> tuple[int, int]:
            where = order.index(t["test"]) if t["test"] in order else len(order)
            return CATEGORY_RANK.get(t["category"], 1), where

        first = min(failed, key=rank)
        label = "not driven" if first["category"] in ("interface", "not_driven") else first["category"]
        return f"`{first['test']}` [{label}]: {_one_line(first['message'])}"
    if not judged_good and judge not in ("-", "") and not failed and entry["passed"]:
        return f"every graded test passed ({entry['passed']}); the judge gave {judge}"
    return None


def render(report: dict[str, Any], readme: Path) -> str:
    models, grades = judge_grades(readme)
    challenges = list(dict.fromkeys(ch for _, ch in grades))
    head = "| challenge | " + " | ".join(f"{m}: grader | {m}: judge" for m in models) + " |"
    lines = [head, "| --- |" + " --- | --- |" * len(models)]
    notes = []
    for ch in challenges:
        cells = []
        for m in models:
            entry, judge = _entry(report, m, ch), grades[(m, ch)]
            why = disagreement(entry, judge)
            mark = " *" if why else ""
            cells += [_ours(entry) + mark, judge]
            if why:
                notes.append(f"- **{m} / {ch}** (grader {_ours(entry)}, judge {judge}): {why}")
        lines.append(f"| {ch} | " + " | ".join(cells) + " |")
    agree = len(challenges) * len(models) - len(notes)
    summary = f"{agree} of {len(challenges) * len(models)} cells agree; `*` marks a disagreement."
    return "\n".join([*lines, "", summary, "", "Disagreements, each from the verdict's own message:", "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "case-study.md")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    table = render(report, args.corpus / "README.md")
    doc = args.doc.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{args.doc}: no {START} ... {END} section to fill")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    args.doc.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", doc))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
