"""Which verdicts changed between two reports (a model's new version, or the grader's), one line per change.

A verdict got worse when a test that passed now fails, or a test that did not fail (or did not exist) now
fails; ``llmchallenges diff`` exits 1 then, so a CI step can stop on a regression. A test that is no longer
graded (skipped for a capability, a missing folder) is listed but is not a regression of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .merge import test_key, verdict_word
from .report_view import category, clip, is_perf

MD_ROWS = 300  # a pull-request comment holds 65536 characters: the worst changes first, then a count


@dataclass(frozen=True)
class Change:
    kind: str  # worse | better | changed | new | gone
    submission: str
    challenge: str
    test: str
    old: str  # verdict word, "" when absent
    new: str
    message: str

    def line(self) -> str:
        old, new = self.old or "absent", self.new or "absent"
        why = f": {self.message}" if self.message and self.kind in ("worse", "changed", "new") else ""
        return f"{self.kind:<7} {self.submission} / {self.challenge} / {self.test}: {old} -> {new}{why}"


def _verdicts(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for s in doc.get("submissions") or []:
        for c in s.get("challenges") or []:
            for t in c.get("tests") or []:
                if not is_perf(t):  # a measurement, not a verdict: its figures vary from run to run
                    out[(str(s.get("name")), str(c.get("name")), test_key(t))] = t
    return out


def _failed(t: dict[str, Any] | None) -> bool:
    return t is not None and t.get("outcome") == "failed" and category(t) != "grader"


def _kind(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if _failed(new) and not _failed(old):
        return "worse"
    if new is None:
        return "gone"
    if old is None:
        return "new"
    if new.get("outcome") == "passed" and old.get("outcome") != "passed":
        return "better"
    return "changed"


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every test whose verdict (outcome and category, not the message's wording) differs, worst first."""
    a, b = _verdicts(old), _verdicts(new)
    changes = []
    for key in sorted(a.keys() | b.keys()):
        o, n = a.get(key), b.get(key)
        ow, nw = (verdict_word(o) if o else ""), (verdict_word(n) if n else "")
        if ow == nw:
            continue
        message = str((n or o or {}).get("message") or "")
        changes.append(Change(_kind(o, n), *key, ow, nw, message))
    order = {"worse": 0, "changed": 1, "gone": 2, "new": 3, "better": 4}
    return sorted(changes, key=lambda c: order.get(c.kind, 9))


def score_lines(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per model whose overall score or grade moved."""

    def scores(doc: dict[str, Any]) -> dict[str, tuple[float, str]]:
        return {
            str(s.get("name")): (
                float(s.get("overall_score", s.get("score", 0.0))),
                str(s.get("overall_grade", s.get("grade"))),
            )
            for s in doc.get("submissions") or []
        }

    a, b = scores(old), scores(new)
    out = []
    for name in sorted(a.keys() | b.keys()):
        if a.get(name) != b.get(name):
            was = f"{a[name][0]:.3f} {a[name][1]}" if name in a else "absent"
            now = f"{b[name][0]:.3f} {b[name][1]}" if name in b else "absent"
            out.append(f"score   {name}: {was} -> {now}")
    return out


def to_text(changes: list[Change], scores: list[str]) -> str:
    lines = [c.line() for c in changes] + scores
    worse = sum(c.kind == "worse" for c in changes)
    lines.append(f"{len(changes)} verdict(s) changed, {worse} worse" if changes else "no verdict changed")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(changes: list[Change], scores: list[str]) -> str:
    """For a pull-request comment: a table of changed verdicts, regressions first."""
    worse = sum(c.kind == "worse" for c in changes)
    out = ["## Grade changes", ""]
    out.append(f"{len(changes)} verdict(s) changed, **{worse} worse**." if changes else "No verdict changed.")
    if scores:
        out += ["", *(f"- {_md(s.removeprefix('score   '))}" for s in scores)]
    if changes:
        out += ["", "| change | model | challenge | test | was | now | message |", "|---|---|---|---|---|---|---|"]
        for c in changes[:MD_ROWS]:
            icon = {"worse": "🔻 worse", "better": "✅ better"}.get(c.kind, c.kind)
            cells = (
                icon,
                c.submission,
                c.challenge,
                f"`{c.test}`",
                c.old or "absent",
                c.new or "absent",
                clip(c.message),
            )
            out.append("| " + " | ".join(_md(x) for x in cells) + " |")
        if len(changes) > MD_ROWS:
            out += ["", f"... and {len(changes) - MD_ROWS} more; `llmchallenges diff` without --format lists them all."]
    return "\n".join(out) + "\n"
