"""The report as Markdown, for ``$GITHUB_STEP_SUMMARY`` and pull-request comments: the HTML's sections, no HTML."""

from __future__ import annotations

from typing import Any

from .report_view import ICONS, LEGEND, FailureLine, View, build_view, clip, shorten, summary


def _md(text: str) -> str:
    """Safe inside a table cell or a list item: no pipes, no line breaks, no stray emphasis."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _ranking(view: View) -> list[str]:
    has_eff = any(r.efficiency for r in view.ranking)
    head = "| rank | model | score | grade | coverage | passed | failed |"
    rule = "|---:|---|---:|---|---|---:|---:|"
    if has_eff:
        head += " efficiency | eff. rank |"
        rule += "---|---:|"
    out = [head, rule]
    for r in view.ranking:
        prov = f" {ICONS['partial']} provisional" if r.provisional else ""
        row = f"| {r.rank} | {_md(r.name)} | {r.score:.3f} | {r.grade} | {r.coverage}{prov} | {r.passed} | {r.failed} |"
        if has_eff:
            row += f" {r.efficiency} | {r.efficiency_rank or ''} |"
        out.append(row)
    return out


def _matrix(view: View) -> list[str]:
    names = [c for c, _ in view.challenges]
    out = ["| model | " + " | ".join(_md(c) for c in names) + " |", "|---|" + ":---:|" * len(names)]
    for r in view.ranking:
        out.append(f"| {_md(r.name)} | " + " | ".join(_md(view.matrix[r.name][c].text) for c in names) + " |")
    legend = "; ".join(f"{word}: {why}" for k, word, why in LEGEND if k not in "ABCDF" and why)
    out += ["", f"Cells: tests passed / tests graded, then the letter; skipped tests are not counted. {legend}."]
    return out


def _efficiency(view: View) -> list[str]:
    if not view.efficiency:
        return []
    names = [c for c, _ in view.challenges]
    out = ["## Efficiency", "", "Measured beside correctness, never part of the grade.", ""]
    out += ["| model | " + " | ".join(_md(c) for c in names) + " |", "|---|" + ":---:|" * len(names)]
    for r in view.ranking:
        figs = view.efficiency.get(r.name, {})
        out.append(f"| {_md(r.name)} | " + " | ".join(_md(figs.get(c, "–")) for c in names) + " |")
    return [*out, ""]


def _line(f: FailureLine, indent: str = "", limit: int = 3) -> str:
    count = f"×{len(f.tests)} " if len(f.tests) > 1 else ""
    where = f"{f.challenge} · " if f.challenge else ""
    tests = f"`{f.tests[0]}`" if len(f.tests) == 1 else _md(shorten(f.tests, limit))
    return f"{indent}- {count}{_md(where)}**{f.category or 'skipped'}**: {_md(clip(f.message))} — {tests}"


def _failures(view: View) -> list[str]:
    out = ["## Failures", ""]
    for m in view.failures:
        cats = summary(m)
        out += [f"### {_md(m.name)}: {cats}", ""]
        lines = [_line(f, limit=8) for f in m.not_graded if not f.challenge]
        for challenge in dict.fromkeys(f.challenge for f in m.failed + m.not_graded if f.challenge):
            lines.append(f"- **{_md(challenge)}**")
            for f in m.failed + m.not_graded:
                if f.challenge == challenge:
                    lines.append(_line(FailureLine("", f.category, f.message, f.tests), indent="  "))
        out += [*(lines or ["Nothing failed or skipped."]), ""]
    return out


def to_markdown(data: dict[str, Any]) -> str:
    """The whole report; ``data`` is the report JSON (schemas 3 and 2; schema 1 renders too)."""
    view = build_view(data)
    out = ["# LLM challenge grades", ""]
    if view.run_line:
        out += [view.run_line, ""]
    out += ["## Ranking", "", *_ranking(view), "", "## Matrix", "", *_matrix(view), ""]
    out += _efficiency(view)
    if view.grader_faults:
        out += ["## Grader faults (never charged to a model)", ""]
        out += [_line(f) for f in view.grader_faults] + [""]
    out += _failures(view)
    out += ["## Not graded: needs review", ""]
    out += ["What the prompts ask for that no test can judge; read these parts of each submission yourself.", ""]
    out += [f"- {_md(c)}: {_md(item)}" for c, item in view.review]
    out += ["", f"schema {view.schema}"]
    return "\n".join(out) + "\n"
