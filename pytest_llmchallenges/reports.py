"""The grade report: one data model (the public JSON schema), rendered as JSON, Markdown, HTML and text.

Everything is built on the controller from the test reports it received, so a run with ``-n 2`` gives the
same report as a serial one. No timings are included: grading the same folder twice gives identical JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .challenges import CHALLENGE_NAMES, CHALLENGES
from .scoring import NOT_SCORED, challenge_score, letter, overall_score
from .submissions import Submission

SCHEMA = "pytest-llmchallenges/report/1"
MISSING_PREFIX = "no submission for "


@dataclass(frozen=True)
class TestRecord:
    nodeid: str
    test: str
    submission: str
    path: str
    challenge: str
    outcome: str  # passed | failed | skipped
    category: str
    message: str


def _challenge_entry(name: str, records: list[TestRecord]) -> dict[str, Any]:
    tests = sorted(records, key=lambda r: r.nodeid)
    passed = sum(r.outcome == "passed" for r in tests)
    failed = sum(r.outcome == "failed" for r in tests)
    skipped = sum(r.outcome == "skipped" for r in tests)
    missing = skipped == len(tests) and all(r.message.startswith(MISSING_PREFIX) for r in tests)
    score = challenge_score(passed, failed)
    return {
        "name": name,
        "difficulty": CHALLENGES[name].difficulty,
        "status": "missing" if missing else "graded",
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "score": 0.0 if score is None else round(score, 6),
        "grade": NOT_SCORED if score is None else letter(score),
        "tests": [
            {
                "test": r.test,
                "nodeid": r.nodeid,
                "outcome": r.outcome,
                "category": r.category,
                "message": r.message,
            }
            for r in tests
        ],
    }


def build(submissions: list[Submission], records: list[TestRecord]) -> dict[str, Any]:
    """The report document. Submissions are ranked by overall score (best first), then by name."""
    entries: list[dict[str, Any]] = []
    for sub in submissions:
        mine = [r for r in records if r.submission == sub.name]
        challenges = [
            _challenge_entry(c, [r for r in mine if r.challenge == c])
            for c in CHALLENGE_NAMES
            if any(r.challenge == c for r in mine)
        ]
        scored = [
            (c["difficulty"], c["score"] if c["grade"] != NOT_SCORED else None)
            for c in challenges
            if c["status"] == "graded"
        ]
        overall = overall_score(scored)
        entries.append(
            {
                "name": sub.name,
                "path": str(sub.path),
                "score": 0.0 if overall is None else round(overall, 6),
                "grade": NOT_SCORED if overall is None else letter(overall),
                "challenges": challenges,
            }
        )
    entries.sort(key=lambda e: (-float(e["score"]), str(e["name"])))
    return {"schema": SCHEMA, "submissions": entries}


def _challenge_columns(data: dict[str, Any]) -> list[str]:
    seen = {c["name"] for s in data["submissions"] for c in s["challenges"]}
    return [c for c in CHALLENGE_NAMES if c in seen]


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["status"] == "missing":
        return "missing"
    return f"{entry['passed']}/{entry['passed'] + entry['failed']} {entry['grade']}"


def terminal_lines(data: dict[str, Any]) -> list[str]:
    columns = _challenge_columns(data)
    rows = [["rank", "submission", "score", "grade", *columns]]
    for i, s in enumerate(data["submissions"], 1):
        by_name = {c["name"]: c for c in s["challenges"]}
        rows.append([str(i), s["name"], f"{s['score']:.3f}", s["grade"], *(_cell(by_name.get(c)) for c in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("cells: tests passed/graded and letter; skipped tests are not counted; 'missing': no folder")
    return lines


def _not_graded(columns: list[str]) -> list[tuple[str, str]]:
    return [(c, item) for c in columns for item in CHALLENGES[c].not_graded]


def to_markdown(data: dict[str, Any]) -> str:
    from .report_markdown import to_markdown as render  # the renderers import this module's helpers

    return render(data)


def to_html(data: dict[str, Any]) -> str:
    from .report_html import to_html as render

    return render(data)


def write(data: dict[str, Any], path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    elif suffix == ".md":
        text = to_markdown(data)
    elif suffix in (".html", ".htm"):
        text = to_html(data)
    else:
        raise ValueError("unknown report format; use a .json, .md or .html file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
