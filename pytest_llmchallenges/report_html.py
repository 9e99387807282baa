"""The report as one self-contained HTML file: no script, no font or image fetched, charts as inline SVG.

Order is what a reader asks first: who ranks where (and how much was graded), then the matrix, then what
failed, grouped per model with identical reasons collapsed. Cells never wrap and never expand: a cell links
to its failures instead, so rows keep one height and the table fits 1400 px with eight or more challenges.
"""

from __future__ import annotations

import html
import math
from typing import Any

from .report_view import (
    BAND_COLOURS,
    ICONS,
    LEGEND,
    Cell,
    FailureLine,
    View,
    build_view,
    clip,
    shorten,
    slug,
    summary,
)

esc = html.escape
WHITE = "#FFFFFF"

CSS = """
/* black text on every band: at least 5:1 contrast on each Okabe-Ito colour used */
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;max-width:1350px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:16px 0 4px} .meta{color:#57606a;font-size:13px;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #d0d7de;padding:4px 7px;text-align:left}
th{background:#f6f8fa;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.matrix td.c{white-space:nowrap;text-align:center;font-variant-numeric:tabular-nums;min-width:72px}
.matrix td.c a{color:inherit;text-decoration:none;display:block} .matrix td.c a:hover{text-decoration:underline}
.matrix th.ch{font-size:12px;max-width:96px;vertical-align:bottom} .matrix th.ch small{color:#57606a;
font-weight:400} .matrix th.m,.rank th.m{white-space:nowrap;max-width:220px;overflow:hidden;text-overflow:ellipsis}
td.missing{background-image:repeating-linear-gradient(45deg,#fff 0 5px,#eee 5px 10px);color:#57606a}
td.absent{color:#8c959f} .legend{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:12px;margin:8px 0}
.legend span.k{display:inline-block;border:1px solid #8c959f;padding:0 6px;margin-right:4px;white-space:nowrap}
.grade{font-weight:700} .prov{color:#8a4b00;font-size:12px}
.charts{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.fail{margin:2px 0 8px;padding-left:20px;font-size:13px;list-style:none} .fail li{margin:2px 0}
.fail ul{padding-left:18px;list-style:disc} .cat{font-weight:600}
.count{display:inline-block;background:#1f2328;color:#fff;border-radius:9px;padding:0 6px;font-size:11px}
td.e{font-size:12px;max-width:210px;text-align:center} .review{font-size:14px}
figure{margin:8px 0} figcaption{font-size:13px;font-weight:600;margin-bottom:4px}
.ng{color:#57606a} code{font-size:12px} .tests{color:#57606a;font-size:12px}
"""


def _cell_td(c: Cell) -> str:
    bg = BAND_COLOURS.get(c.band, "#fff")
    cls = f"c {c.state}" if c.state in ("missing", "absent") else "c"
    text = esc(c.text)
    body = f"<a href='#{esc(c.anchor)}'>{text}</a>" if c.anchor else text
    style = "" if c.state in ("missing", "absent") else f" style='background:{bg}'"
    return f"<td class='{cls}'{style} title='{esc(c.title)}'>{body}</td>"


def _challenge_head(name: str, difficulty: str) -> str:
    wrapped = esc(name).replace("_", "_<wbr>")
    return f"<th class='ch'>{wrapped}<br><small>{esc(difficulty)}</small></th>"


def _ranking(view: View) -> str:
    has_eff = any(r.efficiency for r in view.ranking)
    head = "<tr><th>rank</th><th>model</th><th>score</th><th>grade</th><th>coverage</th><th>passed</th><th>failed</th>"
    head += "<th>efficiency</th><th>eff. rank</th></tr>" if has_eff else "</tr>"
    rows = []
    for r in view.ranking:
        colour = BAND_COLOURS.get(r.grade[:1], "#DDDDDD")
        prov = (
            " <span class='prov' title='a challenge was only partly graded'>◐ provisional</span>"
            if r.provisional
            else ""
        )
        row = (
            f"<tr><td class='num'>{r.rank}</td><th class='m' title='{esc(r.name)}'>"
            f"<a href='#{esc(slug(r.name))}'>{esc(r.name)}</a></th>"
            f"<td class='num'>{r.score:.3f}</td>"
            f"<td class='grade' style='background:{colour}'>{esc(r.grade)}</td>"
            f"<td class='num'>{esc(r.coverage)}{prov}</td>"
            f"<td class='num'>{r.passed}</td><td class='num'>{r.failed}</td>"
        )
        if has_eff:
            er = "" if r.efficiency_rank is None else str(r.efficiency_rank)
            row += f"<td>{esc(r.efficiency)}</td><td class='num'>{er}</td>"
        rows.append(row + "</tr>")
    return f"<table class='rank'>{head}{''.join(rows)}</table>"


def _matrix(view: View) -> str:
    head = "<tr><th>model</th><th>grade</th>" + "".join(_challenge_head(n, d) for n, d in view.challenges) + "</tr>"
    rows = []
    for r in view.ranking:
        cells = "".join(_cell_td(view.matrix[r.name][c]) for c, _ in view.challenges)
        rows.append(
            f"<tr><th class='m' title='{esc(r.name)}'>{esc(r.name)}</th>"
            f"<td class='grade'>{esc(r.grade)}</td>{cells}</tr>"
        )
    legend = "".join(
        f"<span><span class='k' style='background:{BAND_COLOURS.get(k, WHITE)}'>{esc(word)}</span>{esc(why)}</span>"
        for k, word, why in LEGEND
    )
    note = (
        "Cells: tests passed / tests graded, then the letter; skipped tests are not counted. "
        f"{ICONS['grader']} after a figure: a grader fault in that cell, not charged. Click a cell for its failures."
    )
    table = f"<table class='matrix'>{head}{''.join(rows)}</table>"
    return f"{table}<div class='legend'>{legend}</div><p class='meta'>{esc(note)}</p>"


def _score_chart(view: View) -> str:
    """Horizontal bars: overall score per model, coloured by its grade band."""
    rows = view.ranking
    if not rows:
        return ""
    bar_w, left, h = 300, 170, 20
    height = h * len(rows) + 24
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + bar_w + 60}' height='{height}' role='img'>"]
    parts.append("<title>overall score per model</title>")
    for i, r in enumerate(rows):
        y = i * h + 4
        w = max(1.0, bar_w * max(0.0, min(1.0, r.score)))
        name = r.name if len(r.name) <= 24 else r.name[:23] + "…"
        parts.append(f"<text x='{left - 6}' y='{y + 13}' font-size='12' text-anchor='end'>{esc(name)}</text>")
        fill = BAND_COLOURS.get(r.grade[:1], "#DDDDDD")
        parts.append(
            f"<rect x='{left}' y='{y}' width='{w:.1f}' height='{h - 6}' fill='{fill}'"
            " stroke='#1f2328' stroke-width='0.5'/>"
        )
        parts.append(f"<text x='{left + w + 4:.1f}' y='{y + 13}' font-size='12'>{r.score:.2f} {esc(r.grade)}</text>")
    axis_y = h * len(rows) + 8
    for t in (0, 0.5, 1.0):
        x = left + bar_w * t
        parts.append(f"<line x1='{x}' y1='0' x2='{x}' y2='{axis_y}' stroke='#8c959f' stroke-dasharray='2,3'/>")
        parts.append(f"<text x='{x}' y='{axis_y + 12}' font-size='10' text-anchor='middle'>{t:g}</text>")
    parts.append("</svg>")
    return _figure("Overall score per model", "".join(parts))


# Models in the efficiency chart: colours the grade bands do not use first, and a shape each, so that two
# models never differ by colour alone.
MODEL_COLOURS = ("#0072B2", "#CC79A7", "#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#F0E442")


def _marker(j: int, cx: float, cy: float, inner: str) -> str:
    colour = MODEL_COLOURS[j % len(MODEL_COLOURS)]
    style = f"fill='{colour}' stroke='#1f2328' stroke-width='0.5'"
    shape = j % 4
    if shape == 0:
        return f"<circle cx='{cx:.1f}' cy='{cy}' r='5' {style}>{inner}</circle>"
    if shape == 1:
        return f"<rect x='{cx - 4.5:.1f}' y='{cy - 4.5}' width='9' height='9' {style}>{inner}</rect>"
    if shape == 2:
        pts = f"{cx:.1f},{cy - 6} {cx + 6:.1f},{cy} {cx:.1f},{cy + 6} {cx - 6:.1f},{cy}"
    else:
        pts = f"{cx:.1f},{cy - 6} {cx + 5.5:.1f},{cy + 4.5} {cx - 5.5:.1f},{cy + 4.5}"
    return f"<polygon points='{pts}' {style}>{inner}</polygon>"


def _figure(caption: str, body: str) -> str:
    return f"<figure><figcaption>{esc(caption)}</figcaption>{body}</figure>"


def _efficiency_chart(view: View) -> str:
    """Dot plot: speed-up over the baseline per challenge (log scale), one colour per model."""
    models = [r.name for r in view.ranking if view.speedups.get(r.name)]
    challenges = [c for c, _ in view.challenges if any(c in view.speedups[m] for m in models)]
    if not models or not challenges:
        return ""
    left, width, h = 150, 360, 22
    values = [view.speedups[m][c] for m in models for c in challenges if c in view.speedups[m]]
    lo = min(0.1, min(values))
    hi = max(10.0, max(values))
    span = math.log10(hi) - math.log10(lo)

    def x(v: float) -> float:
        return left + width * (math.log10(v) - math.log10(lo)) / span

    height = h * len(challenges) + 20
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 30}' height='{height}' role='img'>"]
    parts.append("<title>speed-up over the baseline per challenge (log scale; right of 1x is faster)</title>")
    for i, c in enumerate(challenges):
        y = i * h + 12
        parts.append(f"<text x='{left - 8}' y='{y + 4}' font-size='12' text-anchor='end'>{esc(c)}</text>")
        parts.append(f"<line x1='{left}' y1='{y}' x2='{left + width}' y2='{y}' stroke='#eaeef2'/>")
        for j, m in enumerate(models):
            if c in view.speedups[m]:
                label = f"<title>{esc(m)}: {view.speedups[m][c]:.3g}x</title>"
                parts.append(_marker(j, x(view.speedups[m][c]), y, label))
    axis_y = h * len(challenges) + 2
    ticks = [t for t in (0.01, 0.1, 1, 10, 100, 1000) if lo <= t <= hi]
    for t in ticks:
        parts.append(
            f"<line x1='{x(t):.1f}' y1='0' x2='{x(t):.1f}' y2='{axis_y}' stroke='{'#1f2328' if t == 1 else '#8c959f'}'"
            f" stroke-dasharray='{'0' if t == 1 else '2,3'}'/>"
        )
        parts.append(f"<text x='{x(t):.1f}' y='{axis_y + 12}' font-size='10' text-anchor='middle'>{t:g}x</text>")
    parts.append("</svg>")
    key = "".join(
        f"<span><svg width='12' height='12'>{_marker(j, 6, 6, '')}</svg> {esc(m)}</span>" for j, m in enumerate(models)
    )
    caption = "Speed-up over the baseline (log scale; right of 1x is faster)"
    return _figure(caption, "".join(parts) + f"<div class='legend'>{key}</div>")


def _efficiency(view: View) -> str:
    if not view.efficiency:
        return ""
    head = "<tr><th>model</th>" + "".join(_challenge_head(n, d) for n, d in view.challenges) + "</tr>"
    rows = []
    for r in view.ranking:
        figs = view.efficiency.get(r.name, {})
        notes = view.efficiency_notes.get(r.name, {})
        cells = "".join(
            f"<td class='e' title='{esc(notes.get(c, ''))}'>{esc(figs.get(c, '–'))}</td>" for c, _ in view.challenges
        )
        rows.append(f"<tr><th class='m'>{esc(r.name)}</th>{cells}</tr>")
    return (
        "<h2>Efficiency</h2><p class='meta'>Measured beside correctness, never part of the grade. "
        "⚑: flagged suspicious and re-checked.</p>"
        f"<table class='matrix eff'>{head}{''.join(rows)}</table>"
    )


def _line(f: FailureLine, skipped: bool = False, limit: int = 3) -> str:
    count = f"<span class='count'>×{len(f.tests)}</span> " if len(f.tests) > 1 else ""
    names = (
        f"<code>{esc(f.tests[0])}</code>"
        if len(f.tests) == 1
        else f"<span class='tests'>{esc(shorten(f.tests, limit))}</span>"
    )
    cls = " class='ng'" if skipped else ""
    where = f"{esc(f.challenge)} · " if f.challenge else ""
    cat = f"<span class='cat'>{esc(f.category or 'skipped')}</span>"
    return f"<li{cls} title='{esc(f.message)}'>{count}{where}{cat}: {esc(clip(f.message))} — {names}</li>"


def _bare(f: FailureLine) -> FailureLine:
    return FailureLine("", f.category, f.message, f.tests)


def _failures(view: View) -> str:
    out = []
    for m in view.failures:
        cats = summary(m)
        out.append(f"<h3 id='{esc(m.anchor)}'>{esc(m.name)} <span class='meta'>— {esc(cats)}</span></h3>")
        lines = [_line(f, skipped=True, limit=8) for f in m.not_graded if not f.challenge]
        for challenge in dict.fromkeys(f.challenge for f in m.failed + m.not_graded if f.challenge):
            inner = [_line(_bare(f)) for f in m.failed if f.challenge == challenge]
            inner += [_line(_bare(f), skipped=True) for f in m.not_graded if f.challenge == challenge]
            anchor = slug(m.name, challenge)
            lines.append(f"<li id='{esc(anchor)}'><b>{esc(challenge)}</b><ul>{''.join(inner)}</ul></li>")
        if lines:
            out.append(f"<ul class='fail'>{''.join(lines)}</ul>")
    return "<h2>Failures</h2>" + "".join(out)


def to_html(data: dict[str, Any]) -> str:
    """The whole report; ``data`` is the report JSON (schemas 3 and 2; schema 1 renders too)."""
    view = build_view(data)
    faults = ""
    if view.grader_faults:
        items = "".join(_line(f) for f in view.grader_faults)
        faults = f"<h2>Grader faults (never charged to a model)</h2><ul class='fail'>{items}</ul>"
    review = "".join(f"<li><b>{esc(c)}</b>: {esc(item)}</li>" for c, item in view.review)
    charts = _score_chart(view) + _efficiency_chart(view)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LLM challenge grades</title>
<style>{CSS}</style></head><body>
<h1>LLM challenge grades</h1>
<p class="meta">{esc(view.run_line)}</p>
<h2>Ranking</h2>
{_ranking(view)}
<div class="charts">{charts}</div>
<h2>Matrix</h2>
{_matrix(view)}
{_efficiency(view)}
{faults}
{_failures(view)}
<h2>Not graded: needs review</h2>
<p class="meta">What the prompts ask for that no test can judge; read these parts of each submission yourself.</p>
<ul class="review">{review}</ul>
<p class="meta">schema {esc(view.schema)}</p>
</body></html>
"""
