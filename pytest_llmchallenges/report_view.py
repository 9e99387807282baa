"""What a reader sees in a report, derived once from the JSON so that HTML and Markdown say the same thing.

Reads schemas 3 and 2 (the same keys; 3 moved the suites' node ids) and tolerates schema 1 with ``.get()``: a
report written by an older or newer plugin, or by ``merge``, still renders. Nothing here computes a score:
scores come from the JSON (``scoring.py`` made them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from . import capabilities
from .challenges import CHALLENGE_NAMES, CHALLENGES
from .scoring import is_efficiency, is_unanswered

# Okabe-Ito: distinguishable with the common colour-vision deficiencies. Grade bands go green -> vermillion;
# the non-graded states are also told apart by a word and an icon, never by shade alone.
BAND_COLOURS = {
    "A": "#009E73",  # bluish green
    "B": "#56B4E9",  # sky blue
    "C": "#F0E442",  # yellow
    "D": "#E69F00",  # orange
    "F": "#D55E00",  # vermillion
    "missing": "#FFFFFF",
    "n/a": "#DDDDDD",
    "grader": "#CC79A7",  # reddish purple
    "absent": "#FFFFFF",
}
ICONS = {"partial": "◐", "missing": "∅", "n/a": "–", "grader": "⚠", "absent": "·"}
LEGEND = (
    ("A", "A range", "all or nearly all graded tests pass"),
    ("B", "B range", ""),
    ("C", "C range", ""),
    ("D", "D", ""),
    ("F", "F", "half or more of the graded tests fail"),
    ("partial", "◐ partial", "some tests could not run on this machine (a capability); graded over the rest"),
    ("missing", "∅ missing", "no folder for this challenge"),
    ("n/a", "– n/a", "nothing could be graded, for a reason that is not a capability"),
    ("grader", "⚠ grader", "a grader fault: never charged to the model"),
)
NOT_GRADED_CATEGORIES = ("missing", "capability")
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def slug(*parts: str) -> str:
    """An HTML id / Markdown anchor for a model (and challenge)."""
    return "-".join(_SLUG.sub("-", p).strip("-").lower() or "x" for p in parts)


@dataclass(frozen=True)
class Cell:
    state: str  # graded | partial | missing | n/a | grader | absent
    text: str  # short, never wrapped: "10/12 B+", "◐ 1/1 A", "∅ missing"
    band: str  # key of BAND_COLOURS
    title: str  # the longer story, for a tooltip
    anchor: str  # where its failures are listed ("" when none)


def summary(m: ModelFailures) -> str:
    """``wrong 3, interface 2``; or why there is nothing to list."""
    return ", ".join(f"{c} {n}" for c, n in m.categories) or ("no failures" if m.graded else "nothing graded")


@dataclass(frozen=True)
class FailureLine:
    challenge: str
    category: str
    message: str
    tests: tuple[str, ...]  # identical reasons are collapsed: len(tests) is the count


@dataclass
class ModelFailures:
    name: str
    anchor: str
    categories: list[tuple[str, int]]
    graded: int = 0
    failed: list[FailureLine] = field(default_factory=list)
    not_graded: list[FailureLine] = field(default_factory=list)


@dataclass(frozen=True)
class RankRow:
    rank: int
    name: str
    score: float
    grade: str
    coverage: str  # "7/8"
    provisional: bool
    passed: int
    failed: int
    efficiency: str  # "faster than baseline, correct: 5 of 7" or ""
    efficiency_rank: int | None


@dataclass
class View:
    schema: str
    run_line: str
    challenges: list[tuple[str, str]]  # (name, difficulty)
    ranking: list[RankRow]
    matrix: dict[str, dict[str, Cell]]  # model -> challenge -> cell
    failures: list[ModelFailures]
    grader_faults: list[FailureLine]
    efficiency: dict[str, dict[str, str]]  # model -> challenge -> short figure ("" when none)
    efficiency_notes: dict[str, dict[str, str]]  # model -> challenge -> reason or figures (tooltip)
    speedups: dict[str, dict[str, float]]  # model -> challenge -> speed-up over the baseline (>1: faster)
    review: list[tuple[str, str]]  # (challenge, what no test judges): needs a person


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _int(value: Any) -> int:
    return int(_num(value))


def challenge_list(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's challenges in order: the top-level list (schema 2 and later), else those any submission has."""
    listed = [c for c in data.get("challenges") or [] if isinstance(c, dict) and c.get("name")]
    if listed:
        return [(str(c["name"]), str(c.get("difficulty") or _difficulty(c["name"]))) for c in listed]
    seen = {c.get("name") for s in data.get("submissions") or [] for c in s.get("challenges") or []}
    known = [c for c in CHALLENGE_NAMES if c in seen]
    extra = sorted(str(c) for c in seen if c and c not in CHALLENGE_NAMES)
    return [(c, _difficulty(c)) for c in known + extra]


def _difficulty(name: str) -> str:
    spec = CHALLENGES.get(name)
    return spec.difficulty if spec else ""


def _band(grade: str) -> str:
    return grade[:1] if grade[:1] in "ABCDF" and grade[:1] else "n/a"


def category(test: dict[str, Any]) -> str:
    """The test's category; a schema-1 skip ("skipped" + reason) is read as ``missing`` or ``capability``."""
    cat = str(test.get("category") or "")
    if cat == "skipped":
        message = str(test.get("message") or "")
        if message.startswith("no submission for "):
            return "missing"
        if message.startswith("needs "):
            return "capability"
    return cat


def unanswered(tests: list[dict[str, Any]]) -> bool:
    """No folder: every test that this machine could run says "missing" (the others lack a capability)."""
    return is_unanswered([category(t) for t in tests])


def is_perf(test: dict[str, Any]) -> bool:
    """An efficiency measurement: its skips are the efficiency table's n/a, with their reason, not failures."""
    return is_efficiency(str(test.get("nodeid") or "")) or str(test.get("test")) == "test_efficiency"


def _is_grader(test: dict[str, Any]) -> bool:
    return test.get("category") == "grader"


def cell(model: str, entry: dict[str, Any] | None) -> Cell:
    """One matrix cell: its state told by a word or icon as well as by colour."""
    if entry is None:
        return Cell("absent", "· not run", "absent", "this challenge was not in this run", "")
    name = str(entry.get("name", ""))
    anchor = slug(model, name)
    tests = entry.get("tests") or []
    faults = sum(_is_grader(t) for t in tests)
    status = str(entry.get("status") or "graded")
    if status == "graded" and any(t.get("outcome") == "skipped" and category(t) == "capability" for t in tests):
        status = "partial"  # a schema-1 report has no "partial": its capability skips say it
    if status == "partial" and unanswered(tests):
        status = "missing"
    passed, failed = _int(entry.get("passed")), _int(entry.get("failed"))
    graded = _int(entry.get("graded", passed + failed))
    grade = str(entry.get("grade") or "-")
    flag = f" {ICONS['grader']}" if faults else ""
    fault_note = f"; {faults} grader fault(s), not charged" if faults else ""
    if status == "missing":
        return Cell(
            "missing", f"{ICONS['missing']} missing", "missing", "no submission for this challenge", slug(model)
        )
    if graded == 0 and faults and faults == len(tests):
        return Cell("grader", f"{ICONS['grader']} grader", "grader", "every test hit a grader fault", anchor)
    if status == "n/a" or (graded == 0 and status != "partial"):
        reason = _first_skip_reason(tests) or "nothing graded"
        return Cell("n/a", f"{ICONS['n/a']} n/a{flag}", "n/a", reason + fault_note, anchor)
    if status == "partial":
        reason = str(entry.get("partial_reason") or _first_skip_reason(tests) or "some tests could not run here")
        if graded == 0:
            caps = entry.get("missing_capabilities") or []
            word = capability_label(caps[0]) if caps else "not run"
            return Cell("partial", f"{ICONS['partial']} {word}{flag}", "n/a", reason + fault_note, anchor)
        text = f"{ICONS['partial']} {passed}/{graded} {grade}{flag}"
        return Cell("partial", text, _band(grade), reason + fault_note, anchor)
    title = f"{passed} of {graded} graded tests pass" + fault_note
    return Cell("graded", f"{passed}/{graded} {grade}{flag}", _band(grade), title, anchor if failed or faults else "")


def capability_label(capability: str) -> str:
    """``no CUDA GPU`` for ``cuda_gpu``: the capabilities module's words where it has them."""
    labels: dict[str, str] = getattr(capabilities, "LABELS", {})
    return labels.get(capability, f"no {capability}")


def _first_skip_reason(tests: list[dict[str, Any]]) -> str:
    return next((str(t.get("message") or "") for t in tests if t.get("outcome") == "skipped"), "")


def _collapse(challenge: str, tests: list[dict[str, Any]]) -> list[FailureLine]:
    """One line per distinct (category, reason); the tests that share it are counted, not repeated; in a merged
    report each test names the run its verdict came from."""
    groups: dict[tuple[str, str], list[str]] = {}
    for t in tests:
        cat, message = str(t.get("category") or ""), str(t.get("message") or "").strip()
        key = (cat, message.removeprefix(f"{cat}: ") if cat else message)
        name = str(t.get("test") or t.get("nodeid") or "?")
        groups.setdefault(key, []).append(f"{name} ({t['run']})" if t.get("run") else name)  # merged: which run
    return [FailureLine(challenge, cat, msg, tuple(names)) for (cat, msg), names in groups.items()]


def model_failures(sub: dict[str, Any]) -> ModelFailures:
    name = str(sub.get("name", "?"))
    failed: list[FailureLine] = []
    not_graded: list[FailureLine] = []
    counts: dict[str, int] = {}
    missing: list[str] = []
    for c in sub.get("challenges") or []:
        cname = str(c.get("name", "?"))
        tests = [t for t in c.get("tests") or [] if not _is_grader(t)]
        if c.get("status") == "missing" or (c.get("status") == "partial" and unanswered(tests)):
            missing.append(cname)
            continue
        bad = [t for t in tests if t.get("outcome") == "failed"]
        for t in bad:
            cat = str(t.get("category") or "failed")
            counts[cat] = counts.get(cat, 0) + 1
        failed += _collapse(cname, bad)
        skipped = [t for t in tests if t.get("outcome") == "skipped" and not is_perf(t)]
        not_graded += _collapse(cname, skipped)
    if missing:  # one line for all of them: a missing challenge is not ten identical "no submission" lines
        not_graded.insert(0, FailureLine("", "missing", "no folder for these challenges", tuple(missing)))
    categories = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    graded = sum(_int(c.get("passed")) + _int(c.get("failed")) for c in sub.get("challenges") or [])
    return ModelFailures(name, slug(name), categories, graded, failed, not_graded)


def _figure_value(value: Any) -> Any:
    if isinstance(value, dict):
        for key in ("median", "value", "ratio"):
            if key in value:
                return value[key]
    return value


def speedup(figures: dict[str, Any]) -> float | None:
    """Speed-up over the baseline (>1: faster): ``speedup``, else the inverse of a time ratio (``vs_baseline``,
    the efficiency suite's, or ``ratio``): submission time / baseline time, below 1 is faster."""
    s = _figure_value(figures.get("speedup"))
    if isinstance(s, int | float) and not isinstance(s, bool) and s > 0:
        return float(s)
    for key in ("vs_baseline", "ratio"):
        r = _figure_value(figures.get(key))
        if isinstance(r, int | float) and not isinstance(r, bool) and r > 0:
            return 1.0 / float(r)
    return None


def faster(figures: Any) -> bool | None:
    """Faster than its baseline: the suite's ``faster_than_baseline``, else the speed-up; None: no baseline."""
    if not isinstance(figures, dict):
        return None
    if isinstance(figures.get("faster_than_baseline"), bool):
        return bool(figures["faster_than_baseline"])
    s = speedup(figures)
    return None if s is None else s > 1.0


_NOT_FIGURES = ("suspicious", "reason", "run", "faster_than_baseline")


def figure_label(figures: Any) -> str:
    """The short text a cell shows: the entry's own ``label`` or ``summary``, else its speed-up, else one figure."""
    if isinstance(figures, str):
        return figures
    if not isinstance(figures, dict) or not figures:
        return ""
    mark = "⚑ " if figures.get("suspicious") else ""
    for key in ("label", "summary"):
        if isinstance(figures.get(key), str):
            text = str(figures[key])
            return text if "suspicious" in text else mark + text
    s = speedup(figures)
    if s is not None:
        return f"{mark}{s:.2g}x baseline"
    for key, value in figures.items():
        v = _figure_value(value)
        if isinstance(v, bool) or key in _NOT_FIGURES:
            continue
        if isinstance(v, int | float):
            return f"{mark}{key} {v:.3g}"
        if isinstance(v, str):
            return f"{mark}{key} {v}"
    return ""


def _efficiency(subs: list[dict[str, Any]]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, float]]]:
    labels: dict[str, dict[str, str]] = {}
    speeds: dict[str, dict[str, float]] = {}
    for s in subs:
        eff = s.get("efficiency")
        if not isinstance(eff, dict):
            continue
        name = str(s.get("name"))
        for challenge, figures in eff.items():
            label = figure_label(figures)
            if label:
                labels.setdefault(name, {})[str(challenge)] = label
            sp = speedup(figures) if isinstance(figures, dict) else None
            if sp is not None:
                speeds.setdefault(name, {})[str(challenge)] = sp
    return labels, speeds


def _efficiency_of(sub: dict[str, Any]) -> dict[str, Any]:
    eff = sub.get("efficiency")
    return eff if isinstance(eff, dict) else {}


def efficiency_note(sub: dict[str, Any], challenge: str) -> str:
    """Why a figure is missing ("reason"), or the figures behind a short label, for a tooltip."""
    eff = _efficiency_of(sub)
    figures = eff.get(challenge)
    if not isinstance(figures, dict):
        return ""
    if figures.get("reason"):
        return str(figures["reason"])
    shown = [f"{k} {v}" for k, v in figures.items() if k not in ("summary", "label") and not isinstance(v, dict)]
    return ", ".join(shown)


def _fast_p(sub: dict[str, Any]) -> tuple[int, int]:
    """fast_p in KernelBench's spirit, p = 1: correct (every graded test passes) and faster than the baseline,
    over the challenges that have a baseline to compare with."""
    correct = {
        c.get("name")
        for c in sub.get("challenges") or []
        if c.get("status") in ("graded", "partial", None) and _int(c.get("failed")) == 0 and _int(c.get("passed"))
    }
    eff = _efficiency_of(sub)
    verdicts = {c: faster(f) for c, f in eff.items()}
    compared = [c for c, v in verdicts.items() if v is not None]
    return sum(1 for c in compared if verdicts[c] and c in correct), len(compared)


def _machine(run: dict[str, Any]) -> str:
    caps = run.get("capabilities") or {}
    have = ", ".join(sorted(k for k, v in caps.items() if v)) or "none"
    lacking = ", ".join(sorted(k for k, v in caps.items() if not v))
    text = f"capabilities: {have}" + (f"; lacking: {lacking}" if lacking else "")
    return text + (f"; isolation: {run['isolation']}" if run.get("isolation") else "")


def _run_line(data: dict[str, Any]) -> str:
    """Where the verdicts were made: the machine, or each merged run's machine."""
    run = data.get("run") or {}
    if not isinstance(run, dict) or not run:
        return ""
    runs = [r for r in data.get("runs") or [] if isinstance(r, dict)]
    merged = ", ".join(f"{r.get('run')} ({_machine(r)})" for r in runs)
    parts = [f"merged from {merged}" if runs else _machine(run)]
    if run.get("score_mode"):
        parts.append(f"score mode: {run['score_mode']}")
    if run.get("provisional"):
        parts.append("provisional (some challenges only partly graded)")
    return "; ".join(parts)


def build_view(data: dict[str, Any]) -> View:
    """Everything the renderers show, in the order they show it."""
    subs = [s for s in data.get("submissions") or [] if isinstance(s, dict)]
    challenges = challenge_list(data)
    labels, speeds = _efficiency(subs)
    fast = {str(s.get("name")): _fast_p(s) for s in subs}
    eff_order = sorted(
        (n for n in fast if fast[n][1]),
        key=lambda n: (-fast[n][0], -_geomean(speeds.get(n, {}).values()), n),
    )
    eff_rank = {n: i for i, n in enumerate(eff_order, 1)}
    ranking: list[RankRow] = []
    matrix: dict[str, dict[str, Cell]] = {}
    for i, s in enumerate(subs, 1):
        name = str(s.get("name", "?"))
        by_name = {c.get("name"): c for c in s.get("challenges") or []}
        matrix[name] = {c: cell(name, by_name.get(c)) for c, _ in challenges}
        cov = s.get("coverage") or {}
        answered = cov.get("answered", sum(1 for c in by_name.values() if c.get("status") != "missing"))
        total = cov.get("total", len(challenges))
        counts = s.get("counts") or {}
        passed = counts.get("passed", sum(_int(c.get("passed")) for c in by_name.values()))
        failed = counts.get("failed", sum(_int(c.get("failed")) for c in by_name.values()))
        k, n = fast[name]
        ranking.append(
            RankRow(
                rank=_int(s.get("rank") or i),
                name=name,
                score=_num(s.get("overall_score", s.get("score"))),
                grade=str(s.get("overall_grade", s.get("grade")) or "-"),
                coverage=f"{_int(answered)}/{_int(total)}",
                provisional=bool(s.get("provisional")),
                passed=_int(passed),
                failed=_int(failed),
                efficiency=f"{k} of {n} correct and faster" if n else "",
                efficiency_rank=eff_rank.get(name),
            )
        )
    faults = [
        FailureLine("", "grader", str(f.get("message", "")), (str(f.get("nodeid", "?")),))
        for f in data.get("grader_faults") or []
        if isinstance(f, dict)
    ]
    review = [(c, item) for c, _ in challenges if c in CHALLENGES for item in CHALLENGES[c].not_graded]
    return View(
        schema=str(data.get("schema", "?")),
        run_line=_run_line(data),
        challenges=challenges,
        ranking=ranking,
        matrix=matrix,
        failures=[model_failures(s) for s in subs],
        grader_faults=faults,
        efficiency=labels,
        efficiency_notes={
            str(s.get("name")): {c: efficiency_note(s, c) for c, _ in challenges} for s in subs if s.get("efficiency")
        },
        speedups=speeds,
        review=review,
    )


def _geomean(values: Any) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else 0.0


MESSAGE = 180  # characters of a failure message a report line shows; the JSON (and the HTML tooltip) has it all


def clip(message: str, limit: int = MESSAGE) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def shorten(names: tuple[str, ...], limit: int = 3) -> str:
    """``a, b, c and 8 more``: the tests that share one reason, without listing eleven of them."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
