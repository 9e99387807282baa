"""The report as Markdown, for $GITHUB_STEP_SUMMARY and pull-request comments."""

from __future__ import annotations

from typing import Any

from .reports import _cell, _challenge_columns, _not_graded


def to_markdown(data: dict[str, Any]) -> str:
    columns = _challenge_columns(data)
    out = ["# LLM challenge grades", "", "## Ranking", "", "| rank | submission | score | grade |", "|---|---|---|---|"]
    for i, s in enumerate(data["submissions"], 1):
        out.append(f"| {i} | {s['name']} | {s['score']:.3f} | {s['grade']} |")
    out += ["", "## Grade matrix", "", "| submission | " + " | ".join(columns) + " |"]
    out.append("|---|" + "---|" * len(columns))
    for s in data["submissions"]:
        by_name = {c["name"]: c for c in s["challenges"]}
        out.append(f"| {s['name']} | " + " | ".join(_cell(by_name.get(c)) for c in columns) + " |")
    out += ["", "Cells: tests passed / tests graded, then the letter grade. Skipped tests are not counted.", ""]
    out += ["## Failures", ""]
    any_failure = False
    for s in data["submissions"]:
        for c in s["challenges"]:
            for t in c["tests"]:
                if t["outcome"] == "failed":
                    any_failure = True
                    msg = t["message"].replace("|", "\\|")
                    out.append(f"- **{s['name']}** / {c['name']} / `{t['test']}` ({t['category']}): {msg}")
    if not any_failure:
        out.append("None.")
    out += ["", "## Not graded: needs review", ""]
    out.append("What the prompts ask for that no test can judge; read these parts of each submission yourself.")
    out.append("")
    for c, item in _not_graded(columns):
        out.append(f"- {c}: {item}")
    return "\n".join(out) + "\n"
