"""``llmchallenges merge`` and ``llmchallenges diff`` through the command line (pytester), on schema-2 reports."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_llmchallenges.diff import diff
from pytest_llmchallenges.merge import merge, rescore
from tests.test_reports_schema import validate

FIXTURES = Path(__file__).parent / "report_fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def cli(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_llmchallenges", *args)


def sub(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["submissions"] if s["name"] == name)


def chal(doc: dict[str, Any], model: str, name: str) -> dict[str, Any]:
    return next(c for c in sub(doc, model)["challenges"] if c["name"] == name)


def test_merge_takes_the_graded_verdict_over_a_capability_skip(pytester: pytest.Pytester) -> None:
    for name in ("cpu", "gpu"):
        shutil.copy(FIXTURES / f"{name}.json", pytester.path / f"{name}.json")
    result = cli(pytester, "merge", "cpu.json", "gpu.json", "-o", "all.json", "-o", "all.md", "-o", "all.html")
    assert result.ret == 0, result.stderr.str()
    merged = json.loads((pytester.path / "all.json").read_text())
    validate(merged)
    fuse = chal(merged, "beta", "fuse")
    assert (fuse["status"], fuse["passed"], fuse["failed"], fuse["grade"]) == ("graded", 3, 1, "B-")
    assert {t["run"] for t in fuse["tests"]} == {"gpu.json"}
    assert {t["run"] for t in chal(merged, "beta", "kv")["tests"]} == {"cpu.json"}
    assert not sub(merged, "alpha")["provisional"] and not merged["run"]["provisional"]
    assert [(r["run"], r["capabilities"]["cuda_gpu"], r["isolation"]) for r in merged["runs"]] == [
        ("cpu.json", False, "namespaces+landlock"),
        ("gpu.json", True, "landlock"),
    ]
    assert merged["run"]["capabilities"]["cuda_gpu"] is True and merged["run"]["isolation"].startswith("mixed")
    assert sub(merged, "alpha")["efficiency"]["fuse"]["run"] == "gpu.json"
    assert "| 2 | beta | 0.734 | C+ |" in (pytester.path / "all.md").read_text()
    assert "gpu.json" in (pytester.path / "all.html").read_text()
    assert "test_k_values[64] (gpu.json)" in (pytester.path / "all.md").read_text()  # a failure names its run
    result.stdout.fnmatch_lines(["*1  alpha  1.000 A  (8/8 answered)", "*2  beta  0.734 C+*"])


def test_merge_rescores_with_the_scoring_module() -> None:
    cpu = load("cpu")
    merged, conflicts = merge([("cpu", cpu), ("gpu", load("gpu"))])
    assert not conflicts
    # the same verdicts, scored as one run: a merged report does not depend on how it was split
    assert rescore(merged) == merged
    beta = sub(merged, "beta")
    assert beta["overall_score"] > sub(cpu, "beta")["overall_score"]
    assert beta["counts"]["failed"] == sub(cpu, "beta")["counts"]["failed"] + 1
    assert beta["coverage"] == {"answered": 8, "total": 8}


def test_a_conflict_is_one_line_and_exits_non_zero(pytester: pytest.Pytester) -> None:
    gpu = load("gpu")
    other = copy.deepcopy(gpu)
    t = chal(other, "beta", "fuse")["tests"][0]
    t.update(outcome="failed", category="wrong", message="differs")
    (pytester.path / "gpu.json").write_text(json.dumps(gpu))
    (pytester.path / "gpu2.json").write_text(json.dumps(other))
    result = cli(pytester, "merge", "gpu.json", "gpu2.json", "-o", "all.json")
    assert result.ret == 1
    lines = [ln for ln in result.stderr.lines if ln.startswith("conflict:")]
    assert lines == [
        f"conflict: beta / fuse / {t['nodeid'].split('::')[1]}: passed in gpu.json; failed (wrong) in gpu2.json"
    ]
    result.stderr.fnmatch_lines(["ERROR: 1 conflicting verdict(s); nothing written"])
    assert not (pytester.path / "all.json").exists()


def test_same_verdicts_from_two_runs_and_a_missing_folder_on_one_machine() -> None:
    mixed = load("mixed")
    merged, conflicts = merge([("a", mixed), ("b", copy.deepcopy(mixed))])
    assert not conflicts
    assert [s["overall_score"] for s in merged["submissions"]] == [s["overall_score"] for s in mixed["submissions"]]
    validate(merged)
    # a folder absent on one machine: the other machine's grade wins, and the run is named
    gone = copy.deepcopy(mixed)
    for t in chal(gone, "alpha", "kv")["tests"]:
        t.update(outcome="skipped", category="missing", message="no submission for kv")
    merged, conflicts = merge([("gone", rescore(gone)), ("full", mixed)])
    assert not conflicts and chal(merged, "alpha", "kv")["status"] == "graded"
    assert {t["run"] for t in chal(merged, "alpha", "kv")["tests"]} == {"full"}


def test_grader_faults_are_kept_and_never_win_over_a_grade() -> None:
    mixed = load("mixed")
    fixed = copy.deepcopy(mixed)
    fixed["grader_faults"] = []
    t = chal(fixed, "beta", "beam_search")["tests"][2]
    t.update(outcome="passed", category="", message="")
    merged, conflicts = merge([("old", mixed), ("fixed", rescore(fixed))])
    assert not conflicts
    beam = chal(merged, "beta", "beam_search")
    assert (beam["passed"], beam["failed"]) == (2, 1)
    assert [f["run"] for f in merged["grader_faults"]] == ["old"]


def test_diff_one_line_per_change_and_exit_1_when_worse(pytester: pytest.Pytester) -> None:
    old = load("mixed")
    new = copy.deepcopy(old)
    chal(new, "alpha", "kv")["tests"][0].update(outcome="failed", category="wrong", message="cache ignored")
    chal(new, "beta", "kv")["tests"][1].update(outcome="passed", category="", message="")
    (pytester.path / "old.json").write_text(json.dumps(old))
    validate(rescore(new))
    (pytester.path / "new.json").write_text(json.dumps(rescore(new)))
    result = cli(pytester, "diff", "old.json", "new.json")
    assert result.ret == 1
    assert result.stdout.lines[:2] == [
        "worse   alpha / kv / test_decode_matches_full[alpha]: passed -> failed (wrong): cache ignored",
        "better  beta / kv / test_cache_grows_by_one[beta]: failed (interface) -> passed",
    ]
    result.stdout.fnmatch_lines(["score   alpha: 1.000 A -> 0.9* A*", "2 verdict(s) changed, 1 worse"])
    md = cli(pytester, "diff", "old.json", "new.json", "--format", "md")
    assert md.ret == 1
    assert md.stdout.lines[0] == "## Grade changes"
    assert "| 🔻 worse | alpha | kv | `test_decode_matches_full[alpha]` | passed | failed (wrong) |" in md.stdout.str()
    back = cli(pytester, "diff", "new.json", "old.json")
    assert back.ret == 1, "beta's kv test fails again"
    same = cli(pytester, "diff", "old.json", "old.json")
    assert same.ret == 0 and same.stdout.lines == ["no verdict changed"]


def test_diff_a_message_change_alone_is_not_a_change() -> None:
    old = load("mixed")
    new = copy.deepcopy(old)
    chal(new, "beta", "flash_attention")["tests"][0]["message"] = "another wording"
    assert diff(old, new) == []
    gone = copy.deepcopy(old)
    for t in chal(gone, "alpha", "kv")["tests"]:
        t.update(outcome="skipped", category="capability", message="needs MLX")
    assert {c.kind for c in diff(old, gone)} == {"changed"}, "not graded any more is not a regression"


def test_bad_inputs_are_one_line_errors(pytester: pytest.Pytester) -> None:
    (pytester.path / "x.json").write_text("{}")
    r = cli(pytester, "merge", "x.json", "-o", "all.json")
    assert r.ret == 1 and "not a pytest-llmchallenges report" in r.stderr.str()
    r = cli(pytester, "merge", "x.json", "-o", "all.txt")
    assert r.ret == 2 and "use a .json, .md or .html" in r.stderr.str()
    r = cli(pytester, "scaffold", "-n", "m1", "--dest", str(pytester.path))
    assert r.ret == 0 and (pytester.path / "m1").is_dir()


def test_render_writes_markdown_and_html(pytester: pytest.Pytester) -> None:
    shutil.copy(FIXTURES / "mixed.json", pytester.path / "mixed.json")
    r = cli(pytester, "render", "mixed.json", "-o", "out/m.md", "-o", "out/m.html")
    assert r.ret == 0
    assert (pytester.path / "out/m.md").read_text().startswith("# LLM challenge grades")


def test_diff_leaves_efficiency_measurements_out() -> None:
    old = load("mixed")
    perf = {
        "test": "test_efficiency",
        "nodeid": "pytest_llmchallenges/challenges/kv/suite/test_efficiency_kv.py::test_efficiency[alpha]",
        "outcome": "passed",
        "category": "",
        "message": "",
        "run": None,
    }
    chal(old, "alpha", "kv")["tests"].append(perf)
    new = copy.deepcopy(old)
    chal(new, "alpha", "kv")["tests"][-1].update(outcome="skipped", message="efficiency not measured: slow")
    assert diff(old, new) == []


def test_diff_markdown_fits_a_pull_request_comment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_llmchallenges import diff as diff_module

    old = load("mixed")
    new = copy.deepcopy(old)
    for t in chal(new, "alpha", "kv")["tests"]:
        t.update(outcome="failed", category="wrong", message="x" * 5000)
    monkeypatch.setattr(diff_module, "MD_ROWS", 2)
    md = diff_module.to_markdown(diff(old, new), [])
    assert md.count("| 🔻 worse |") == 2 and "... and 1 more" in md
    assert max(len(line) for line in md.splitlines()) < 400
