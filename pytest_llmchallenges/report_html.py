"""The report as one self-contained HTML file (no network)."""

from __future__ import annotations

import html
from typing import Any

from .challenges import CHALLENGES
from .reports import _cell, _challenge_columns, _not_graded

_GRADE_COLOURS = {"A": "#1a7f37", "B": "#4d9a2a", "C": "#b08800", "D": "#d1670c", "F": "#cf222e"}


def to_html(data: dict[str, Any]) -> str:
    esc = html.escape
    columns = _challenge_columns(data)

    def colour(grade: str) -> str:
        return _GRADE_COLOURS.get(grade[:1], "#6e7781")

    rows = []
    for i, s in enumerate(data["submissions"], 1):
        by_name = {c["name"]: c for c in s["challenges"]}
        cells = [
            f"<td>{i}</td><th>{esc(s['name'])}</th>",
            f"<td style='background:{colour(s['grade'])};color:#fff'>{s['score']:.3f} {esc(s['grade'])}</td>",
        ]
        for name in columns:
            c = by_name.get(name)
            if c is None:
                cells.append("<td>-</td>")
                continue
            bg = "#8c959f" if c["status"] == "missing" else colour(c["grade"])
            items = "".join(
                f"<li class='{esc(t['outcome'])}'><code>{esc(t['test'])}</code> {esc(t['outcome'])}"
                f" <b>[{esc(t['category'])}]</b> {esc(t['message'])}</li>"
                for t in c["tests"]
            )
            cells.append(
                f"<td style='background:{bg}'><details><summary>{esc(_cell(c))}</summary><ul>{items}</ul>"
                "</details></td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    review = "".join(f"<li><b>{esc(c)}</b>: {esc(item)}</li>" for c, item in _not_graded(columns))
    head = "".join(f"<th>{esc(c)}<br><small>{esc(CHALLENGES[c].difficulty)}</small></th>" for c in columns)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LLM challenge grades</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}}
table{{border-collapse:collapse}} td,th{{border:1px solid #d0d7de;padding:6px 8px;vertical-align:top}}
td details summary{{cursor:pointer;color:#fff;font-weight:600}} td ul{{background:#fff;color:#1f2328;
margin:6px 0 0;padding:6px 6px 6px 22px;max-width:40em;font-size:13px}}
li.failed b{{color:#cf222e}} li.passed b{{color:#1a7f37}} li.skipped b{{color:#6e7781}}
</style></head><body>
<h1>LLM challenge grades</h1>
<p>Cells: tests passed / tests graded, then the letter grade; click a cell for its tests, each with its
category and message. Skipped tests are not counted.</p>
<table><tr><th>rank</th><th>submission</th><th>overall</th>{head}</tr>
{"".join(rows)}
</table>
<h2>Not graded: needs review</h2><ul>{review}</ul>
<p><small>schema {esc(data["schema"])}</small></p>
</body></html>
"""
