"""Verdicts and scores as a user sees them (pytester): coverage, missing and partial challenges, grader faults,
option checks, one line per failure. Every JSON report written here is validated against report.schema.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pytest_llmchallenges.challenges import CHALLENGE_NAMES, CHALLENGES, DIFFICULTY_WEIGHT
from tests.conftest import write_submission

GOOD = "def entry(x):\n    return x * 2\n"
BAD = "def entry(x):\n    return x\n"
SCHEMA = Path(__file__).resolve().parents[1] / "pytest_llmchallenges" / "report.schema.json"
ARGS = ("-p", "no:cacheprovider")
SELFCHECK = "from pytest_llmchallenges.child.llmc_drive_selfcheck import call_direct, call_entry\n"


def suite(challenge: str, body: str | None = None) -> str:
    """A suite of ``challenge`` through the selfcheck driver (entry(21) must be 42), or the given body."""
    return f"CHALLENGE = {challenge!r}\nimport os, pytest\n{SELFCHECK}" + (
        body or 'def test_entry(sandbox):\n    assert sandbox.run(call_entry, 21).value == 42, "expected 42"\n'
    )


def load(path: Path) -> dict[str, Any]:
    """A JSON report, validated against the shipped schema."""
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in data["submissions"]}


def challenge(data: dict[str, Any], sub: str, name: str) -> dict[str, Any]:
    return next(c for c in by_name(data)[sub]["challenges"] if c["name"] == name)


def all_suites(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{f"test_{c}": suite(c) for c in CHALLENGE_NAMES})


def suites_here(pytester: pytest.Pytester) -> list[str]:
    """The suites written by the test, as arguments (without any, the plugin collects its packaged suites)."""
    return sorted(p.name for p in pytester.path.glob("test_*.py"))


def grade(pytester: pytest.Pytester, *extra: str, target: str = "bench") -> pytest.RunResult:
    args = ("--llm-submission", target, "--llm-report", "r.json", *ARGS, *extra, *suites_here(pytester))
    return pytester.runpytest(*args)


# --- coverage counts ---------------------------------------------------------------------------------------


def test_missing_challenges_score_zero_and_coverage_is_shown(pytester: pytest.Pytester) -> None:
    files = {f"bench/full/{c}/sol.py": GOOD for c in CHALLENGE_NAMES}
    files |= {"bench/one/backwards/sol.py": GOOD, "bench/two/backwards/sol.py": GOOD, "bench/two/kv/sol.py": GOOD}
    write_submission(pytester.path, files)
    all_suites(pytester)
    result = grade(pytester, "--junitxml", "j.xml")
    data = load(pytester.path / "r.json")
    subs = by_name(data)
    assert [s["name"] for s in data["submissions"]] == ["full", "two", "one"]
    assert subs["full"]["overall_score"] == 1.0 and subs["full"]["rank"] == 1
    weights = sum(DIFFICULTY_WEIGHT[CHALLENGES[c].difficulty] for c in CHALLENGE_NAMES)
    assert subs["one"]["overall_score"] == pytest.approx(1 / weights, abs=1e-6)
    assert subs["one"]["coverage"] == {"answered": 1, "total": 8}
    assert subs["two"]["coverage"] == {"answered": 2, "total": 8}
    fuse = challenge(data, "one", "fuse")
    assert fuse["status"] == "missing" and fuse["grade"] == "-" and fuse["tests"][0]["category"] == "missing"
    assert data["run"]["score_mode"] == "all"
    out = result.stdout.str()
    assert "llm-submission one:" in out and "(1/8 answered; missing: fuse (no folder)" in out
    assert re.search(r"^3\s+one\s+0\.\d+\s+F\s+1/8\s+1/1 A\s+missing", out, re.M), out
    assert "a missing one scoring 0 (--llm-score=all)" in out
    assert 'message="missing: no fuse folder"' in (pytester.path / "j.xml").read_text()


@pytest.mark.parametrize("how", ["option", "ini"])
def test_score_over_answered_challenges_only(pytester: pytest.Pytester, how: str) -> None:
    files = {f"bench/full/{c}/sol.py": GOOD for c in ("backwards", "kv")} | {"bench/one/backwards/sol.py": GOOD}
    write_submission(pytester.path, files)
    pytester.makepyfile(test_backwards=suite("backwards"), test_kv=suite("kv"))
    if how == "ini":
        pytester.makeini("[pytest]\nllm_score = answered\n")
    result = grade(pytester, *(["--llm-score", "answered"] if how == "option" else []))
    data = load(pytester.path / "r.json")
    assert data["run"]["score_mode"] == "answered"
    assert [(s["name"], s["rank"], s["overall_score"]) for s in data["submissions"]] == [
        ("full", 1, 1.0),
        ("one", 1, 1.0),
    ]
    assert by_name(data)["one"]["coverage"] == {"answered": 1, "total": 2}
    result.stdout.fnmatch_lines(["*over answered challenges only (--llm-score=answered)*"])


@pytest.mark.parametrize(
    "files",
    [{"PROMPT.md": "# the prompt"}, {"PROMPT.md": "# p", "train_data.txt": "data"}, {"notes.txt": "thinking..."}],
    ids=["prompt-only", "prompt-and-data", "no-readable-answer"],
)
def test_scaffold_only_folder_is_missing_everywhere(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    layout = {f"bench/m/ternary_training/{k}": v for k, v in files.items()} | {"bench/m/backwards/sol.py": GOOD}
    write_submission(pytester.path, layout)
    pytester.makepyfile(test_backwards=suite("backwards"), test_ternary_training=suite("ternary_training"))
    result = grade(pytester, "--junitxml", "j.xml")
    result.assert_outcomes(passed=1, skipped=1)
    entry = challenge(load(pytester.path / "r.json"), "m", "ternary_training")
    assert entry["status"] == "missing" and entry["graded"] == 0 and entry["grade"] == "-"
    out = result.stdout.str()
    assert "ternary_training (scaffold files only)" in out
    assert re.search(r"^1\s+m\s+[\d.]+\s+\S+\s+1/2\s+1/1 A\s+missing$", out, re.M), out
    assert 'message="missing: the ternary_training folder holds' in (pytester.path / "j.xml").read_text()


def test_absent_folder_is_missing_not_na(pytester: pytest.Pytester) -> None:
    """A challenge not run for one model (deselected) but absent from its folder is still missing, never 0/0 n/a."""
    write_submission(
        pytester.path, {"bench/a/backwards/sol.py": GOOD, "bench/a/fuse/k.cu": "x", "bench/b/kv/s.py": GOOD}
    )
    pytester.makepyfile(test_backwards=suite("backwards"), test_fuse=suite("fuse", "def test_x(sandbox):\n    pass\n"))
    grade(pytester, "--deselect", "test_backwards.py::test_entry[b]", "--deselect", "test_fuse.py::test_x[b]")
    data = load(pytester.path / "r.json")
    assert not [t for c in by_name(data)["b"]["challenges"] for t in c["tests"]]  # b's tests did not run
    assert {c["name"]: c["status"] for c in by_name(data)["b"]["challenges"]} == {
        "backwards": "missing",
        "fuse": "missing",
    }


# --- partial grading ---------------------------------------------------------------------------------------

PARTIAL_SUITE = """
def test_compiles(sandbox):
    assert sandbox.run(call_entry, 21).value == 42

@pytest.mark.parametrize("case", range(11))
def test_on_gpu(sandbox, case):
    pytest.skip("needs a CUDA GPU: no NVIDIA device on this machine")
"""


def test_partial_grading_is_marked_and_provisional(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"bench/m/fuse/sol.py": GOOD, "bench/m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_fuse=suite("fuse", PARTIAL_SUITE), test_backwards=suite("backwards"))
    result = grade(pytester)
    data = load(pytester.path / "r.json")
    fuse = challenge(data, "m", "fuse")
    assert fuse["status"] == "partial" and fuse["partial_reason"] == "1 of 12 graded: no CUDA GPU"
    assert fuse["missing_capabilities"] == ["cuda_gpu"] and fuse["grade"] == "A"
    assert {t["category"] for t in fuse["tests"] if t["outcome"] == "skipped"} == {"capability"}
    sub = by_name(data)["m"]
    assert sub["provisional"] and data["run"]["provisional"]
    assert data["run"]["missing_capabilities"] == ["cuda_gpu"]
    assert set(data["run"]["capabilities"]) >= {"cuda_gpu", "nvcc", "mlx"}
    assert data["run"]["seed"] == 0 and not data["run"]["isolation"].startswith("isolation:")
    out = result.stdout.str()
    assert re.search(r"^1\s+m\s+1\.000\s+A\*\s+2/2\s+1/1 A\s+1/1 A\*$", out, re.M), out
    result.stdout.fnmatch_lines(
        ["* partial: m/fuse: 1 of 12 graded: no CUDA GPU", "provisional: grading on a machine with a CUDA GPU would*"]
    )


# --- grader faults -----------------------------------------------------------------------------------------

FAULTS_SUITE = """
@pytest.fixture
def broken_cleanup():
    yield
    raise RuntimeError("cleanup went wrong")

def test_ok(sandbox):
    assert sandbox.run(call_entry, 21).value == 42

def test_unknown_driver_function(sandbox):
    run = sandbox.run  # out of the collection check's sight: the run-time guard must catch it too
    run("selfcheck:no_such_function", 21)

def test_our_bug(sandbox):
    {}["missing key"]

def test_cleanup(sandbox, broken_cleanup):
    assert sandbox.run(call_entry, 21).value == 42

def test_bad_design(sandbox):
    from pytest_llmchallenges.grading import design
    design(sandbox.run(call_entry, 21).value == 41, "the suite's own expectation is off")
"""


def test_grader_faults_are_never_charged_to_the_model(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_backwards=suite("backwards", FAULTS_SUITE))
    result = grade(pytester, "--junitxml", "j.xml", target="m")
    assert result.ret == 3
    data = load(pytester.path / "r.json")
    entry = challenge(data, "m", "backwards")
    assert (entry["passed"], entry["failed"], entry["grade"]) == (1, 0, "A")  # the cleanup's test passed its call
    faults = {f["nodeid"].split("::")[1].split("[")[0]: f["message"] for f in data["grader_faults"]}
    assert set(faults) == {"test_unknown_driver_function", "test_our_bug", "test_cleanup", "test_bad_design"}
    assert "test design: the suite's own expectation is off" in faults["test_bad_design"]
    assert "no_such_function" in faults["test_unknown_driver_function"]
    assert "KeyError" in faults["test_our_bug"] and "during teardown" in faults["test_cleanup"]
    out = result.stdout.str()
    assert out.index("GRADER FAULTS (4)") > out.index("LLM challenge grades")
    result.stdout.fnmatch_lines(["*exit status 3: the grader failed on 4 test(s)*"])
    result.stdout.fnmatch_lines(["FAILED *test_our_bug?m? - [[]grader] grader fault: KeyError*"])


def test_exception_in_the_submissions_files_is_its_error(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": "def entry(x):\n    raise ValueError('boom')\n"})
    body = "def test_direct(sandbox):\n    sandbox.run(call_direct, 21)\n"
    pytester.makepyfile(test_backwards=suite("backwards", body))
    grade(pytester, target="m")
    test = challenge(load(pytester.path / "r.json"), "m", "backwards")["tests"][0]
    assert test["category"] == "error" and "sol.py:2" in test["message"]


# --- options checked before anything runs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "expect"),
    [
        (["--llm-timeout", "-1"], "", "--llm-timeout '-1': must be a positive number"),
        (["--llm-timeout", "0"], "", "--llm-timeout '0': must be a positive number"),
        (["--llm-timeout", "nan"], "", "must be a positive number"),
        (["--llm-memory", "abc"], "", "--llm-memory 'abc': must be a positive number"),
        ([], "llm_timeout = abc", "ini llm_timeout 'abc': must be a positive number"),
        ([], "llm_score = best", "ini llm_score 'best': must be one of all, answered"),
        (["--llm-score", "best"], "", "--llm-score 'best': must be one of all, answered"),
        (["--llm-isolation", "max"], "", "--llm-isolation 'max': must be one of auto, strict, off"),
        ([], "llm_isolation = max", "ini llm_isolation 'max': must be one of auto, strict, off"),
        (["--llm-report", "x.txt"], "", "--llm-report x.txt: unknown report format"),
        (["--llm-report", "nowhere/r.json"], "", "--llm-report nowhere/r.json: no such folder nowhere"),
        ([], "llm_report = nowhere/r.md", "no such folder"),
        (["--llm-report", "m"], "", "--llm-report m: unknown report format"),
    ],
)
def test_bad_values_are_one_usage_error(pytester: pytest.Pytester, args: list[str], ini: str, expect: str) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_backwards=suite("backwards", "def test_never():\n    raise SystemExit(9)\n"))
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("--llm-submission", "m", *ARGS, *args, *suites_here(pytester))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if "error" in ln.lower()]
    assert len(errors) == 1 and expect in errors[0], result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_value_apart_from_its_option_that_moves_the_rootdir_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """pytest picks its rootdir before the plugin's options are known, so ``--llm-report /elsewhere/r.json``
    (a path in a tree apart from the project) roots the run there and drops the project's settings: the run
    must stop and name the fix (``=``) instead. Written with ``=``, the same report path is fine."""
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_backwards=suite("backwards"))
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\nllm_submission = ["m"]\n')
    apart = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        report = apart / "r.json"
        report.write_text("{}")  # an earlier report: an existing path is what pytest takes for a test path
        result = pytester.runpytest_subprocess("--llm-report", str(report))
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        assert f"write --llm-report={report} (with '=')" in result.stderr.str()
        joined = pytester.runpytest_subprocess(f"--llm-report={report}", "test_backwards.py")
        assert joined.ret == pytest.ExitCode.OK, joined.stdout.str()
        assert json.loads(report.read_text())["submissions"][0]["name"] == "m"
    finally:
        shutil.rmtree(apart, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_report_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_backwards=suite("backwards"))
    locked = pytester.path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = pytester.runpytest(
            "--llm-submission", "m", "--llm-report", "locked/r.json", *ARGS, "test_backwards.py"
        )
    finally:
        locked.chmod(0o700)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --llm-report locked/r.json: not writable" in result.stderr.str()


# --- one line per failure --------------------------------------------------------------------------------------


def test_wrong_verdict_is_one_line_and_junit_agrees_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write_submission(pytester.path, {"m/backwards/sol.py": BAD})
    body = (
        "def test_entry(sandbox):\n"
        "    value = sandbox.run(call_entry, 21).value\n"
        "    assert value == 42, f'expected 42, got {value!r}'\n"
    )
    pytester.makepyfile(test_backwards=suite("backwards", body))
    base = ("--llm-submission", "m", *ARGS, "test_backwards.py")
    serial = pytester.runpytest_subprocess(*base, "--junitxml", "serial.xml", "-p", "no:xdist")
    out = serial.stdout.str()
    serial.stdout.fnmatch_lines(["[[]wrong] expected 42, got 21", "FAILED *test_entry?m? - [[]wrong] expected 42*"])
    assert "sandbox.run(" not in out and "grading.py" not in out and "AssertionError" not in out
    line = pytester.runpytest(*base, "--tb=line", "-p", "no:xdist")
    line.stdout.fnmatch_lines(["*test_backwards.py:?: [[]wrong] expected 42, got 21"])
    pytester.runpytest_subprocess(*base, "-n", "2", "--junitxml", "parallel.xml")
    messages = [
        re.findall(r'<failure message="([^"]*)"', (pytester.path / f).read_text())
        for f in ("serial.xml", "parallel.xml")
    ]
    assert messages[0] == messages[1] == ["[wrong] expected 42, got 21"]


@pytest.mark.parametrize("when", ["call", "setup"])
def test_a_worker_crash_is_a_grader_fault_everywhere(pytester: pytest.Pytester, when: str) -> None:
    pytest.importorskip("xdist")
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    body = (
        "@pytest.fixture\ndef killer():\n    os._exit(1)\n\n"
        "def test_ok(sandbox):\n    assert sandbox.run(call_entry, 21).value == 42\n\n"
        + (
            "def test_kills_worker(sandbox):\n    open('wrote.txt', 'w').write('x')\n    os._exit(1)\n"
            if when == "call"
            else "def test_kills_worker(killer, sandbox):\n    pass\n"
        )
    )
    pytester.makepyfile(test_backwards=suite("backwards", body))
    result = pytester.runpytest_subprocess(
        "--llm-submission", "m", *ARGS, "-n", "2", "--llm-report", "r.json", "--junitxml", "j.xml", "test_backwards.py"
    )
    assert result.ret == 3
    result.stdout.fnmatch_lines(["FAILED *test_kills_worker?m? - [[]grader] worker*"])
    data = load(pytester.path / "r.json")
    tests = {t["test"]: t for t in challenge(data, "m", "backwards")["tests"]}
    assert tests["test_kills_worker"]["outcome"] == "failed" and tests["test_kills_worker"]["category"] == "grader"
    assert challenge(data, "m", "backwards")["grade"] == "A" and len(data["grader_faults"]) == 1
    assert re.search(r'<failure message="\[grader\] worker', (pytester.path / "j.xml").read_text())


def test_interrupted_run_is_labelled_incomplete(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": BAD})
    body = "\n".join(f"def test_{i}(sandbox):\n    assert sandbox.run(call_entry, 21).value == 42\n" for i in range(3))
    pytester.makepyfile(test_backwards=suite("backwards", body))
    result = grade(pytester, "-x", target="m")
    assert load(pytester.path / "r.json")["run"]["incomplete"] is True
    result.stdout.fnmatch_lines(["incomplete: the run stopped early*"])


def test_efficiency_figures_are_carried_into_the_report_and_never_counted(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    body = (
        "def test_a(sandbox, request):\n    request.node.user_properties.append(('llm_efficiency', {'x': 1}))\n\n"
        "@pytest.mark.perf\ndef test_b(sandbox, request):\n"
        "    request.node.user_properties.append(('llm_efficiency', {'y': 2.5}))\n\n"
        "@pytest.mark.perf\ndef test_c(sandbox):\n"
        "    pytest.skip('needs a CUDA GPU: no NVIDIA device on this machine')\n"
    )
    pytester.makepyfile(test_backwards=suite("backwards", body))
    grade(pytester, target="m")
    data = load(pytester.path / "r.json")
    assert by_name(data)["m"]["efficiency"] == {"backwards": {"x": 1, "y": 2.5}}
    entry = challenge(data, "m", "backwards")
    assert (entry["status"], entry["total"], entry["passed"], entry["skipped"]) == ("graded", 1, 1, 0)
    assert [t["test"] for t in entry["tests"]] == ["test_a", "test_b", "test_c"]  # listed, not counted
    assert by_name(data)["m"]["counts"] == {"passed": 1, "failed": 0, "skipped": 0, "by_category": {}}


def test_an_answer_nothing_could_drive_shows_as_not_driven(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"bench/a/backwards/sol.py": GOOD, "bench/b/backwards/sol.py": GOOD})
    body = (
        "from pytest_llmchallenges.grading import GradingFailure\n\n"
        "def test_a(submission):\n"
        "    if submission.name == 'b':\n"
        "        raise GradingFailure('not_driven', 'no callable fits; add to llmchallenge.toml: entry = \"f.py:g\"')\n"
    )
    pytester.makepyfile(test_backwards=suite("backwards", body))
    result = grade(pytester)
    entry = challenge(load(pytester.path / "r.json"), "b", "backwards")
    assert entry["failed"] == 1 and entry["tests"][0]["category"] == "not_driven"
    assert re.search(r"^2\s+b\s+0\.000\s+F\s+1/1\s+not driven$", result.stdout.str(), re.M), result.stdout.str()


def test_the_safety_timeout_is_a_timeout_not_a_wrong_answer(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_timeout")
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    body = "import time\n\n@pytest.mark.timeout(1)\ndef test_slow(sandbox):\n    time.sleep(10)\n"
    pytester.makepyfile(test_backwards=suite("backwards", body))
    result = grade(pytester, target="m")
    test = challenge(load(pytester.path / "r.json"), "m", "backwards")["tests"][0]
    assert test["category"] == "timeout" and "safety limit" in test["message"]
    result.stdout.fnmatch_lines(["FAILED *test_slow?m? - [[]timeout] the test ran past*"])


def test_a_report_that_cannot_be_written_keeps_the_table(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_llmchallenges import reports

    def refuse(data: dict[str, Any], path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(reports, "write", refuse)
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makepyfile(test_backwards=suite("backwards"))
    result = grade(pytester, target="m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*LLM challenge grades*", "1 *m *1.000*", "*ERROR: --llm-report r.json: disk full"])


def test_a_suite_naming_an_unknown_entry_is_a_grader_fault_at_collection(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    body = (
        "from pytest_llmchallenges.challenges.backwards.driver import llmc_drive_backwards as driver\n\n"
        "def test_x(sandbox):\n    sandbox.run(driver.gradiants, [])\n"
    )
    pytester.makepyfile(test_backwards=suite("backwards", body))
    result = grade(pytester, target="m")
    assert result.ret == 3
    result.stdout.fnmatch_lines(
        ["GRADER FAULTS (1)*", "  test_backwards.py: grader fault: *gradiants*", "exit status 3*"]
    )


def test_serial_and_parallel_reports_are_identical(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    files = {"bench/a/fuse/sol.py": GOOD, "bench/a/backwards/sol.py": BAD, "bench/b/backwards/PROMPT.md": "# p"}
    write_submission(pytester.path, files)
    pytester.makepyfile(test_fuse=suite("fuse", PARTIAL_SUITE), test_backwards=suite("backwards"))
    args = ("--llm-submission", "bench", *ARGS, "test_fuse.py", "test_backwards.py")
    pytester.runpytest_subprocess(*args, "-p", "no:xdist", "--llm-report", "serial.json")
    pytester.runpytest_subprocess(*args, "-n", "2", "--llm-report", "parallel.json")
    serial = load(pytester.path / "serial.json")
    assert serial == load(pytester.path / "parallel.json")
    assert [c["status"] for c in by_name(serial)["b"]["challenges"]] == ["missing", "missing"]
    assert by_name(serial)["a"]["provisional"] and by_name(serial)["a"]["coverage"] == {"answered": 2, "total": 2}


def test_a_missing_challenge_with_capability_tests_is_missing_not_partial(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD, "m/fuse/PROMPT.md": "# p"})
    body = "@pytest.mark.gpu\ndef test_gpu(sandbox):\n    pass\n\ndef test_cpu(sandbox):\n    pass\n"
    pytester.makepyfile(test_fuse=suite("fuse", body))
    grade(pytester, target="m")
    data = load(pytester.path / "r.json")
    fuse = challenge(data, "m", "fuse")
    assert fuse["status"] == "missing" and {t["category"] for t in fuse["tests"]} == {"missing"}
    assert not data["run"]["provisional"] and fuse["missing_capabilities"] == []
