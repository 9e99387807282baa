"""The grade report: one data model (the public JSON schema), rendered as JSON, Markdown, HTML and text.

Everything is built on the controller from the test reports it received, so a run with ``-n 2`` gives the
same report as a serial one. No timings are included: grading the same folder twice gives identical JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capabilities import LABELS, NAMES
from .challenges import CHALLENGE_NAMES, CHALLENGES
from .scoring import (
    NOT_SCORED,
    SCORE_MODES,
    challenge_score,
    counted,
    is_efficiency,
    letter,
    overall_score,
    status,
    tally,
)
from .submissions import Submission

SCHEMA = "pytest-llmchallenges/report/3"
PARTIAL_MARK = "*"  # after a partial challenge's letter, and after a provisional overall grade


@dataclass(frozen=True)
class TestRecord:
    nodeid: str
    test: str
    submission: str
    path: str
    challenge: str
    outcome: str  # passed | failed | skipped
    category: str  # "" (passed), a failure category, "missing", "capability" or "grader"
    message: str
    capability: str = ""  # the capability a "capability" skip lacks (capabilities.LABELS' keys)
    efficiency: dict[str, Any] = field(default_factory=dict)  # figures attached as "llm_efficiency"
    perf: bool = False  # an efficiency measurement (marker perf): its figures are reported, never counted


def _perf(record: TestRecord) -> bool:
    """An efficiency measurement (marker ``perf``, or an efficiency suite): listed, never counted."""
    return record.perf or is_efficiency(record.nodeid)


def _challenge_entry(name: str, records: list[TestRecord], missing_reason: str | None) -> dict[str, Any]:
    """One challenge of one submission. No records at all: missing when the folder says so, else n/a (not run)."""
    everything = sorted(records, key=lambda r: r.nodeid)
    tests = [r for r in everything if not _perf(r)]  # correctness only: efficiency is its own axis
    counts = tally([(r.outcome, r.category) for r in tests])
    caps = (
        [] if missing_reason else sorted({r.capability for r in tests if r.category == "capability" and r.capability})
    )
    # the folder decides missing; else the verdicts
    state = "missing" if missing_reason else status([r.category for r in tests], counts["graded"], bool(caps))
    score = challenge_score(counts["passed"], counts["failed"]) if state in ("graded", "partial") else None
    labels = ", ".join(LABELS.get(c, f"no {c}") for c in caps)
    return {
        "name": name,
        "difficulty": CHALLENGES[name].difficulty,
        "status": state,
        "partial_reason": f"{counts['graded']} of {counts['total']} graded: {labels}" if state == "partial" else None,
        "missing_capabilities": caps,
        **counts,
        "score": 0.0 if score is None else round(score, 6),
        "grade": NOT_SCORED if score is None else letter(score),
        "tests": [
            {
                "test": r.test,
                "nodeid": r.nodeid,
                "outcome": r.outcome,
                "category": r.category,
                "message": r.message,
                "run": None,
            }
            for r in everything
        ],
    }


def _efficiency(records: list[TestRecord]) -> dict[str, dict[str, Any]]:
    """The efficiency figures of each challenge, merged over its tests (in node id order)."""
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.nodeid):
        if r.efficiency:
            out.setdefault(r.challenge, {}).update(r.efficiency)
    return out


def _submission_entry(sub: Submission, records: list[TestRecord], names: list[str], mode: str) -> dict[str, Any]:
    mine = [r for r in records if r.submission == sub.name]
    challenges = [_challenge_entry(c, [r for r in mine if r.challenge == c], sub.missing_reason(c)) for c in names]
    perf = {r.nodeid for r in mine if _perf(r)}
    overall = overall_score(
        [(c["difficulty"], counted(c["status"], c["score"] if c["graded"] else None, mode)) for c in challenges]
    )
    by_category: dict[str, int] = {}
    for c in challenges:
        for t in c["tests"]:
            if t["category"] and t["nodeid"] not in perf:
                by_category[t["category"]] = by_category.get(t["category"], 0) + 1
    return {
        "name": sub.name,
        "path": str(sub.path),
        "rank": 0,
        "overall_score": 0.0 if overall is None else round(overall, 6),
        "overall_grade": NOT_SCORED if overall is None else letter(overall),
        "provisional": any(c["status"] == "partial" for c in challenges),
        "coverage": {"answered": sum(c["status"] != "missing" for c in challenges), "total": len(challenges)},
        "counts": {
            "passed": sum(c["passed"] for c in challenges),
            "failed": sum(c["failed"] for c in challenges),
            "skipped": sum(c["skipped"] for c in challenges),
            "by_category": dict(sorted(by_category.items())),
        },
        "efficiency": _efficiency(mine),
        "challenges": challenges,
    }


def build(
    submissions: list[Submission],
    records: list[TestRecord],
    score_mode: str = "all",
    run: dict[str, Any] | None = None,
    faults: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The report document (schema 3, report.schema.json). Submissions are ranked by overall score, best
    first, then by name; equal scores share a rank. The challenges are those the run collected."""
    if score_mode not in SCORE_MODES:
        raise ValueError(f"unknown score mode {score_mode!r}")
    names = [c for c in CHALLENGE_NAMES if any(r.challenge == c for r in records)]
    entries = [_submission_entry(sub, records, names, score_mode) for sub in submissions]
    entries.sort(key=lambda e: (-float(e["overall_score"]), str(e["name"])))
    for i, e in enumerate(entries):
        same = i and entries[i - 1]["overall_score"] == e["overall_score"]
        e["rank"] = entries[i - 1]["rank"] if same else i + 1
    missing_caps = sorted({m for e in entries for c in e["challenges"] for m in c["missing_capabilities"]})
    return {
        "schema": SCHEMA,
        "run": {
            "score_mode": score_mode,
            "capabilities": {},
            "isolation": "default",
            "seed": None,
            "incomplete": False,
            **(run or {}),
            "provisional": any(e["provisional"] for e in entries),
            "missing_capabilities": missing_caps,
        },
        "challenges": [{"name": c, "difficulty": CHALLENGES[c].difficulty} for c in names],
        "submissions": entries,
        "grader_faults": sorted(
            [*(faults or []), *({"nodeid": r.nodeid, "message": r.message} for r in records if r.category == "grader")],
            key=lambda f: f["nodeid"],
        ),
    }


def _challenge_columns(data: dict[str, Any]) -> list[str]:
    seen = {c["name"] for s in data["submissions"] for c in s["challenges"]}
    return [c for c in CHALLENGE_NAMES if c in seen]


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["status"] in ("missing", "n/a"):
        return str(entry["status"])
    mark = PARTIAL_MARK if entry["status"] == "partial" else ""
    failed = [t["category"] for t in entry.get("tests", []) if t["outcome"] == "failed" and t["category"] != "grader"]
    if not entry["passed"] and failed and set(failed) == {"not_driven"}:
        return "not driven"  # nothing could be called: not a wrong answer, though it scores as one
    return f"{entry['passed']}/{entry['graded']} {entry['grade']}{mark}"


def score_line(run: dict[str, Any], total: int) -> str:
    """How the overall score was computed: every report states it."""
    if run.get("score_mode") == "answered":
        return "score: over answered challenges only (--llm-score=answered); missing ones are left out"
    what = f"all {total} challenges" if total != 1 else "the 1 challenge"
    return f"score: over {what} of the run, a missing one scoring 0 (--llm-score=all)"


def footer_lines(data: dict[str, Any]) -> list[str]:
    """What a reader must know to trust the table: scoring, partial grades, an incomplete run, grader faults."""
    run = data.get("run", {})
    lines = [score_line(run, len(data.get("challenges", []))), _CELLS]
    partial = [
        f"{s['name']}/{c['name']}: {c['partial_reason']}"
        for s in data["submissions"]
        for c in s["challenges"]
        if c["status"] == "partial"
    ]
    if partial:
        caps = " and ".join(NAMES.get(c, c) for c in run.get("missing_capabilities", []))
        lines.append(f"{PARTIAL_MARK} partial: " + "; ".join(partial))
        lines.append(f"provisional: grading on a machine with {caps} would complete it")
    if run.get("incomplete"):
        lines.append("incomplete: the run stopped early (-x, --maxfail or an interrupt); not every test ran")
    return lines


_CELLS = (
    "cells: tests passed/graded and letter; 'missing': not answered (no folder, or only scaffold files); "
    "'not driven': the grader found no way to call the answer (see each test's message)"
)


def terminal_lines(data: dict[str, Any], notes: list[str] | None = None) -> list[str]:
    """The grade table, its footer, the notes, then the grader's faults in a block of their own, last."""
    columns = _challenge_columns(data)
    rows = [["rank", "submission", "score", "grade", "answered", *columns]]
    for s in data["submissions"]:
        by_name = {c["name"]: c for c in s["challenges"]}
        cov = s["coverage"]
        grade = s["overall_grade"] + (PARTIAL_MARK if s["provisional"] else "")
        rows.append(
            [str(s["rank"]), s["name"], f"{s['overall_score']:.3f}", grade, f"{cov['answered']}/{cov['total']}"]
            + [_cell(by_name.get(c)) for c in columns]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += footer_lines(data) + (notes or [])
    return lines + fault_lines(data.get("grader_faults", []))


def fault_lines(faults: list[dict[str, str]]) -> list[str]:
    """The grader's own faults, in a block of their own: never charged to a model."""
    if not faults:
        return []
    head = f"GRADER FAULTS ({len(faults)}): faults of the grader, not of the models; not scored"
    return ["", head, *(f"  {f['nodeid']}: {f['message']}" for f in faults)]


def _not_graded(columns: list[str]) -> list[tuple[str, str]]:
    return [(c, item) for c in columns for item in CHALLENGES[c].not_graded]


def to_markdown(data: dict[str, Any]) -> str:
    from .report_markdown import to_markdown as render  # the renderers import this module's helpers

    return render(data)


def to_html(data: dict[str, Any]) -> str:
    from .report_html import to_html as render

    return render(data)


def check_target(path: Path) -> str | None:
    """None when a report can be written to ``path``, else the one-line reason it cannot."""
    if path.suffix.lower() not in (".json", ".md", ".html", ".htm"):
        return "unknown report format; use a .json, .md or .html file name"
    if path.is_dir():
        return "is a folder; give a file name"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"no such folder {folder}; create it first"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "not writable"
    return None


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
    path.write_text(text)
