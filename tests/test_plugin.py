"""The plugin through pytest itself (pytester): options, ini, markers, collection, errors, reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SELFCHECK_SUITE, write_submission
from tests.test_verdicts import load

GOOD = "def entry(x):\n    return x * 2\n"


def test_inert_without_submission(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n\ndef test_no_fixture_of_ours(rng):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'rng' not found*"])
    assert "LLM challenge grades" not in result.stdout.str()
    assert "llm-submission" not in result.stdout.str()


def test_strict_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marks="""
import pytest
@pytest.mark.medium
@pytest.mark.hard
@pytest.mark.extra_hard
@pytest.mark.research
@pytest.mark.beam_search
@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.mlx
@pytest.mark.slow
def test_ok():
    pass
"""
    )
    pytester.runpytest("--strict-markers", "-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("layout", "expect"),
    [
        (None, "no such folder"),
        ({"empty/readme.txt": "hi"}, "holds no challenge folder"),
        ({"file.txt": "x"}, "is a file"),
    ],
    ids=["missing-path", "no-challenge-folder", "a-file"],
)
def test_bad_path_is_one_usage_error(pytester: pytest.Pytester, layout: dict | None, expect: str) -> None:
    target = "nowhere"
    if layout:
        write_submission(pytester.path, layout)
        target = next(iter(layout)).split("/")[0]
    result = pytester.runpytest("--llm-submission", target, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.startswith("ERROR")]
    assert len(errors) == 1 and expect in errors[0]
    assert "Traceback" not in result.stderr.str()


def test_grades_a_bench_folder_with_ids_and_reports(pytester: pytest.Pytester) -> None:
    write_submission(
        pytester.path,
        {"bench/good/backwards/sol.py": GOOD, "bench/bad/backwards/sol.py": "def entry(x):\n    return x\n"},
    )
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    (pytester.path / "out").mkdir()
    result = pytester.runpytest(
        "--llm-submission",
        "bench",
        "test_suite.py",
        "-p",
        "no:cacheprovider",
        "-v",
        "--llm-report",
        "out/r.json",
        "--llm-report",
        "out/r.md",
        "--llm-report",
        "out/r.html",
        "--junitxml",
        "out/j.xml",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_entry?bad? FAILED*", "*test_entry?good? PASSED*", "*LLM challenge grades*"])
    data = load(pytester.path / "out/r.json")
    assert data["schema"] == "pytest-llmchallenges/report/3"
    assert [s["name"] for s in data["submissions"]] == ["good", "bad"]
    bad = data["submissions"][1]["challenges"][0]
    assert bad["tests"][0]["category"] == "wrong" and "expected 42, got 21" in bad["tests"][0]["message"]
    assert "needs review" in (pytester.path / "out/r.md").read_text()
    assert "<table" in (pytester.path / "out/r.html").read_text()
    xml = (pytester.path / "out/j.xml").read_text()
    for prop in ("submission", "challenge", "difficulty", "category"):
        assert f'property name="{prop}"' in xml


def test_ini_keys(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": GOOD})
    pytester.makeini("[pytest]\nllm_submission = m\nllm_report = grades.json\n")
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    pytester.runpytest("test_suite.py", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert load(pytester.path / "grades.json")["submissions"][0]["overall_grade"] == "A"


def test_missing_challenge_is_skipped_and_counted_missing(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/kv/sol.py": GOOD})
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    result = pytester.runpytest(
        "--llm-submission", "m", "test_suite.py", "-p", "no:cacheprovider", "-rs", "--llm-report", "r.json"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*missing: no backwards folder*"])
    entry = load(pytester.path / "r.json")["submissions"][0]["challenges"][0]
    assert entry["status"] == "missing"


def test_collects_packaged_suites_without_paths_and_filters_by_difficulty(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/kv/sol.py": GOOD})
    result = pytester.runpytest("--llm-submission", "m", "-p", "no:cacheprovider", "--co", "-q", "-m", "hard")
    out = result.stdout.str()
    assert "test_beam_search.py::" in out and "[m]" in out
    assert "test_kv.py::" not in out and "test_backwards.py::" not in out


def test_submission_conftest_and_tests_stay_inert(pytester: pytest.Pytester) -> None:
    evil_conftest = (
        "import pytest\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    rep = yield\n    rep.outcome = 'passed'\n    return rep\n"
    )
    write_submission(
        pytester.path,
        {
            "m/backwards/sol.py": "def entry(x):\n    return 0\n",
            "m/backwards/conftest.py": evil_conftest,
            "m/backwards/test_own.py": "def test_always():\n    assert True\n",
            "m/conftest.py": evil_conftest,
        },
    )
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    result = pytester.runpytest("--llm-submission", "m", "test_suite.py", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "test_own" not in result.stdout.str()


def test_manifest_overrides_names(pytester: pytest.Pytester) -> None:
    write_submission(
        pytester.path,
        {
            "m/backwards/a.py": "def entry(x):\n    return -1\n",
            "m/backwards/b.py": "def doubled(x):\n    return x * 2\n",
            "m/backwards/llmchallenge.toml": '[roles]\nentry = "b.py:doubled"\n',
        },
    )
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    pytester.runpytest("--llm-submission", "m", "test_suite.py", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_interface_failure_names_the_fix(pytester: pytest.Pytester) -> None:
    write_submission(
        pytester.path,
        {"m/backwards/sol.py": "def something_else(x):\n    return x\n", "m/backwards/broken.py": "def entry(:\n"},
    )
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    result = pytester.runpytest(
        "--llm-submission", "m", "test_suite.py", "-p", "no:cacheprovider", "--llm-report", "r.json"
    )
    result.assert_outcomes(failed=1)
    test = load(pytester.path / "r.json")["submissions"][0]["challenges"][0]["tests"][0]
    assert test["category"] == "interface"
    assert "broken.py (line 1" in test["message"] or "broken.py" in result.stdout.str()
    result.stdout.fnmatch_lines(["*llmchallenge.toml*", "*note: m/backwards/broken.py does not parse*"])


def test_timeout_option(pytester: pytest.Pytester) -> None:
    write_submission(pytester.path, {"m/backwards/sol.py": "import time\ndef entry(x):\n    time.sleep(30)\n"})
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    result = pytester.runpytest(
        "--llm-submission",
        "m",
        "test_suite.py",
        "-p",
        "no:cacheprovider",
        "--llm-timeout",
        "1",
        "--llm-report",
        "r.json",
    )
    result.assert_outcomes(failed=1)
    test = load(pytester.path / "r.json")["submissions"][0]["challenges"][0]["tests"][0]
    assert test["category"] == "timeout"


def test_xdist_gives_the_same_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write_submission(
        pytester.path,
        {f"bench/m{i}/backwards/sol.py": GOOD if i % 2 else "def entry(x):\n    return 1\n" for i in range(4)},
    )
    pytester.makepyfile(test_suite=SELFCHECK_SUITE)
    args = ["--llm-submission", "bench", "test_suite.py", "-p", "no:cacheprovider"]
    pytester.runpytest_subprocess(*args, "--llm-report", "serial.json")
    pytester.runpytest_subprocess(*args, "-n", "2", "--llm-report", "parallel.json")
    serial = (pytester.path / "serial.json").read_text()
    assert serial == (pytester.path / "parallel.json").read_text()
    assert load(pytester.path / "serial.json")["submissions"][0]["overall_grade"] == "A"


def test_reference_option_finds_the_packaged_reference(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--llm-reference", "-p", "no:cacheprovider", "--co", "-q", "-m", "backwards")
    assert "[reference]" in result.stdout.str()


def test_suites_without_submission_skip(pytester: pytest.Pytester) -> None:
    from pytest_llmchallenges.challenges import CHALLENGES

    ini = pytester.makeini("[pytest]\n")  # not this repository's config, which names the reference
    suite = CHALLENGES["backwards"].suite
    assert suite is not None
    result = pytester.runpytest(str(suite / "test_backwards.py"), "-c", str(ini), "-p", "no:cacheprovider", "-rs")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no submissions given*"])


def test_scaffold(tmp_path: Path) -> None:
    from pytest_llmchallenges.__main__ import main

    assert main(["scaffold", "-n", "model_y", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "model_y" / "ternary_training" / "train_data.txt").stat().st_size > 100_000
    assert "Flash" in (tmp_path / "model_y" / "flash_attention" / "PROMPT.md").read_text()
    assert main(["scaffold", "-n", "model_y", "--dest", str(tmp_path)]) == 1
