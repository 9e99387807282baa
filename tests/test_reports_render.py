"""The HTML and Markdown reports, rendered from hand-written schema-2 documents (tests/report_fixtures)."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_llmchallenges.merge import merge
from pytest_llmchallenges.report_html import to_html
from pytest_llmchallenges.report_markdown import to_markdown
from pytest_llmchallenges.report_view import build_view, capability_label, cell
from pytest_llmchallenges.reports import score_line, terminal_lines

FIXTURES = Path(__file__).parent / "report_fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if d.get("id"):
            self.ids.append(str(d["id"]))


def test_html_is_self_contained_and_ranking_comes_first() -> None:
    page = to_html(load("mixed"))
    tags = _Tags()
    tags.feed(page)
    assert not [t for t, a in tags.tags if t in ("script", "link", "img", "iframe")]
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page), "nothing fetched from the network"
    assert page.index("<h2>Ranking") < page.index("<h2>Matrix") < page.index("<h2>Failures")
    assert page.count("role='img'") == 2, "score per model and efficiency per challenge"


def test_every_cell_link_has_a_target() -> None:
    tags = _Tags()
    tags.feed(to_html(load("mixed")))
    targets = {a["href"][1:] for t, a in tags.tags if t == "a" and (a.get("href") or "").startswith("#")}
    assert targets and targets <= set(tags.ids)


def test_states_differ_by_word_or_icon_not_only_colour() -> None:
    view = build_view(load("mixed"))
    beta = view.matrix["beta"]
    texts = {
        "missing": beta["flash_attention_bwd"].text,
        "n/a": beta["ternary_training"].text,
        "partial": beta["fuse"].text,
        "grader": beta["beam_search"].text,
    }
    partial = f"◐ {capability_label('cuda_gpu')}"
    assert texts == {"missing": "∅ missing", "n/a": "– n/a", "partial": partial, "grader": "1/2 D ⚠"}
    assert len({t.split()[0] for t in texts.values()}) == 4
    assert beta["kv"].text == "0/3 F" and beta["kv"].anchor == "beta-kv"


def test_cells_are_short_and_never_wrap() -> None:
    view = build_view(load("mixed"))
    assert max(len(c.text) for row in view.matrix.values() for c in row.values()) <= 14
    assert "white-space:nowrap" in to_html(load("mixed"))


def test_identical_reasons_collapse_with_a_count() -> None:
    view = build_view(load("mixed"))
    beta = next(m for m in view.failures if m.name == "beta")
    kv = [f for f in beta.failed if f.challenge == "kv"]
    assert len(kv) == 1 and len(kv[0].tests) == 3 and kv[0].category == "interface"
    fuse = [f for f in beta.not_graded if f.challenge == "fuse"]
    assert len(fuse) == 1 and len(fuse[0].tests) == 4, "one 'needs a CUDA GPU' line, counted"
    assert beta.categories[0] == ("interface", 3)
    delta = next(m for m in view.failures if m.name == "delta")
    assert len(delta.not_graded) == 1 and len(delta.not_graded[0].tests) == 8, "a missing model is one line"
    md = to_markdown(load("mixed"))
    assert md.count("needs a CUDA GPU") == 2, "once per model that has fuse, not once per test"
    assert "×3 **interface**" in md


def test_grader_faults_are_listed_apart_and_never_charged() -> None:
    data = load("mixed")
    beta = next(s for s in data["submissions"] if s["name"] == "beta")
    beam = next(c for c in beta["challenges"] if c["name"] == "beam_search")
    assert beam["failed"] == 1 and beam["graded"] == 2
    view = build_view(data)
    assert not any(f.category == "grader" for m in view.failures for f in m.failed)
    assert [f.category for f in view.grader_faults] == ["grader"]
    assert "Grader faults (never charged to a model)" in to_markdown(data)


def test_efficiency_column_ranking_and_chart_when_present() -> None:
    data = load("mixed")
    view = build_view(data)
    alpha = next(r for r in view.ranking if r.name == "alpha")
    assert alpha.efficiency == "3 of 3 correct and faster" and alpha.efficiency_rank == 1
    assert view.efficiency["alpha"]["flash_attention"] == "0.31x naive"
    assert view.efficiency["beta"]["backwards"] == "0.4x baseline"
    assert view.speedups["beta"]["flash_attention"] == pytest.approx(0.4)
    for s in data["submissions"]:
        s.pop("efficiency", None)
    page = to_html(data)
    assert "eff. rank" not in page and page.count("role='img'") == 1 and "## Efficiency" not in to_markdown(data)


def test_markdown_has_the_same_sections_and_no_html() -> None:
    md = to_markdown(load("mixed"))
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:3] == ["## Ranking", "## Matrix", "## Efficiency"]
    assert "## Failures" in heads
    assert not re.search(r"<[a-zA-Z/][^>]*>", md)
    for line in md.splitlines():
        if line.startswith("| "):
            assert line.count(" | ") + 2 == line.count("|") - line.count("\\|"), line


def test_schema_1_reports_still_render() -> None:
    old = {
        "schema": "pytest-llmchallenges/report/1",
        "submissions": [
            {
                "name": "m",
                "path": "m",
                "score": 0.5,
                "grade": "D",
                "challenges": [
                    {
                        "name": "kv",
                        "difficulty": "medium",
                        "status": "graded",
                        "passed": 1,
                        "failed": 1,
                        "skipped": 0,
                        "score": 0.5,
                        "grade": "D",
                        "tests": [
                            {"test": "t1", "nodeid": "a::t1", "outcome": "passed", "category": "ok", "message": ""},
                            {"test": "t2", "nodeid": "a::t2", "outcome": "failed", "category": "wrong", "message": "x"},
                        ],
                    }
                ],
            }
        ],
    }
    assert "1/2 D" in to_markdown(old) and "1/2 D" in to_html(old)


def test_a_missing_challenge_entry_is_not_run_and_html_escapes_names() -> None:
    data = load("mixed")
    hostile = copy.deepcopy(data)
    hostile["submissions"][0]["name"] = "<script>alert(1)</script>"
    hostile["submissions"][0]["challenges"].pop()
    page = to_html(hostile)
    assert "<script>" not in page
    assert cell("x", None).state == "absent"


def test_no_folder_on_a_machine_without_the_capability_reads_missing() -> None:
    """fuse on a CPU machine: "missing" for the one test that runs here, "capability" for the rest."""
    entry = {
        "name": "fuse",
        "status": "partial",
        "passed": 0,
        "failed": 0,
        "graded": 0,
        "partial_reason": "0 of 3 graded: no CUDA GPU",
        "tests": [
            {
                "test": "test_compiles",
                "outcome": "skipped",
                "category": "missing",
                "message": "missing: no fuse folder",
            },
            {"test": "t2", "outcome": "skipped", "category": "capability", "message": "needs a CUDA GPU"},
            {"test": "t3", "outcome": "skipped", "category": "capability", "message": "needs a CUDA GPU"},
        ],
    }
    assert cell("m", entry).state == "missing"
    view = build_view({"submissions": [{"name": "m", "challenges": [entry]}]})
    assert [(f.category, f.tests) for f in view.failures[0].not_graded] == [("missing", ("fuse",))]
    merged, _ = merge([("run", {"submissions": [{"name": "m", "challenges": [entry]}]})])
    assert merged["submissions"][0]["challenges"][0]["status"] == "missing"


def test_a_message_that_repeats_its_category_is_not_stuttered() -> None:
    t = {"test": "x", "outcome": "failed", "category": "interface", "message": "interface: no entry point"}
    view = build_view({"submissions": [{"name": "m", "challenges": [{"name": "kv", "failed": 1, "tests": [t]}]}]})
    assert view.failures[0].failed[0].message == "no entry point"


def test_fast_p_reads_the_suites_own_verdict_and_skips_figures_without_a_baseline() -> None:
    data = load("mixed")
    alpha = next(s for s in data["submissions"] if s["name"] == "alpha")
    alpha["efficiency"]["backwards"]["faster_than_baseline"] = False  # a ratio below 1 but the suite says no
    row = next(r for r in build_view(data).ranking if r.name == "alpha")
    assert row.efficiency == "2 of 3 correct and faster", "dflash (no baseline) and fuse (n/a) are not counted"


def test_long_messages_are_cut_in_both_renderings() -> None:
    data = load("mixed")
    beta = next(s for s in data["submissions"] if s["name"] == "beta")
    t = next(c for c in beta["challenges"] if c["name"] == "backwards")["tests"][2]
    t["message"] = "got [" + "1, " * 400 + "]"
    assert max(len(line) for line in to_markdown(data).splitlines()) < 400
    assert t["message"] in to_html(data), "the whole message stays in the tooltip"


def test_efficiency_skips_are_the_tables_n_a_not_failure_lines() -> None:
    data = load("mixed")
    alpha = next(s for s in data["submissions"] if s["name"] == "alpha")
    kv = next(c for c in alpha["challenges"] if c["name"] == "kv")
    kv["tests"].append(
        {
            "test": "test_efficiency",
            "nodeid": "pytest_llmchallenges/challenges/kv/suite/test_efficiency_kv.py::test_efficiency[alpha]",
            "outcome": "skipped",
            "category": "",
            "message": "efficiency not measured: timed output wrong",
            "run": None,
        }
    )
    alpha["efficiency"]["kv"] = {"summary": "n/a", "reason": "timed output wrong"}
    view = build_view(data)
    assert not [f for m in view.failures for f in m.not_graded if "not measured" in f.message]
    assert view.efficiency["alpha"]["kv"] == "n/a" and view.efficiency_notes["alpha"]["kv"] == "timed output wrong"
    assert "title='timed output wrong'>n/a</td>" in to_html(data)


# --- the terminal table (reports.terminal_lines) ----------------------------------------------------------------
def _row(lines: list[str], name: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[1:2] == [name])


def test_terminal_table_rows_footer_notes_then_faults_last() -> None:
    lines = terminal_lines(load("mixed"), ["a note"])
    assert lines[0].split()[:5] == ["rank", "submission", "score", "grade", "answered"]
    assert _row(lines, "beta")[:5] == ["2", "beta", "0.389", "F*", "7/8"]  # provisional: the grade is marked
    assert "0/0 -*" in lines[1] and lines[1].split()[5:7] == ["3/3", "A"]  # a partial cell is marked too
    assert lines.index("a note") < lines.index("") < len(lines) - 2  # notes, then the fault block, last
    assert lines[-2].startswith("GRADER FAULTS (1): ") and lines[-1].startswith("  pytest_llmchallenges/")


def test_terminal_cell_says_not_driven_only_when_every_failure_is_one() -> None:
    data = copy.deepcopy(load("mixed"))
    kv = next(c for c in next(s for s in data["submissions"] if s["name"] == "beta")["challenges"] if c["name"] == "kv")
    for t in kv["tests"]:
        t.update(outcome="failed", category="not_driven", message="no usable cache")
    assert _row(terminal_lines(data), "beta")[9:11] == ["not", "driven"]  # after backwards and fuse
    kv["tests"][0]["category"] = "wrong"  # driven once and wrong: the count, not "not driven"
    assert _row(terminal_lines(data), "beta")[9:11] == ["0/3", "F"]


def test_score_line_names_the_mode_and_the_count() -> None:
    assert score_line({"score_mode": "answered"}, 8).startswith("score: over answered challenges only")
    assert score_line({}, 1) == "score: over the 1 challenge of the run, a missing one scoring 0 (--llm-score=all)"
    assert "over all 3 challenges" in score_line({"score_mode": "all"}, 3)


def test_no_grader_faults_no_block_and_an_incomplete_run_says_so() -> None:
    data = copy.deepcopy(load("mixed"))
    data["grader_faults"] = []
    data["run"]["incomplete"] = True
    lines = terminal_lines(data)
    assert not any(line.startswith("GRADER FAULTS") for line in lines)
    assert lines[-1].startswith("incomplete: the run stopped early")
