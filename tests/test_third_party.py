"""A challenge from another package (examples/llmc-example-challenge), registered through the pytest hook or
the entry-point group, is graded end to end like a built-in one: markers and ``-m``, the JSON report's
challenge list, its mutants caught by their named tests, the scaffold, and a child that reads its driver but
never its suite, oracle or prompt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_llmchallenges import capabilities, isolation, registry, scaffold
from pytest_llmchallenges.challenges import CHALLENGE_NAMES, CHALLENGES

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llmc-example-challenge"
SRC = EXAMPLE / "src"
PACKAGE = SRC / "llmc_example_challenge"
MUTANTS = tomllib.loads((EXAMPLE / "mutants" / "softmax.toml").read_text())
HOOK = 'pytest_plugins = ["llmc_example_challenge.plugin"]\n'
ARGS = ("-p", "no:xdist", "-p", "no:cacheprovider", "-m", "softmax")


def _models(root: Path, mutants: list[str]) -> Path:
    """The reference answer and the named mutants, each a model folder holding ``softmax/``."""
    models = root / "models"
    shutil.copytree(EXAMPLE / "reference", models / "reference")
    for name in mutants:
        shutil.copytree(EXAMPLE / "reference", models / name)
        for edit in MUTANTS[name]["edit"]:
            path = models / name / "softmax" / edit["file"]
            text = path.read_text()
            assert text.count(edit["old"]) == 1, f"mutant {name} is disarmed: {edit['old']!r}"
            path.write_text(text.replace(edit["old"], edit["new"]))
    return models


def _entry_point_stub(folder: Path, target: str = "llmc_example_challenge:challenge") -> Path:
    """An installed distribution's metadata alone (no pip install): what makes the entry point visible."""
    info = folder / "llmc_example_challenge-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmc-example-challenge\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nsoftmax = {target}\n")
    return folder


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert(SRC)
    return pytester


def test_graded_end_to_end_through_the_hook(example: pytest.Pytester) -> None:
    example.makeconftest(HOOK)
    models = _models(example.path, list(MUTANTS))
    result = example.runpytest("--llm-submission", str(models), "--llm-report", "r.json", *ARGS)
    assert "softmax" not in CHALLENGES, "a run's registration outlived the run"
    data = json.loads((example.path / "r.json").read_text())
    assert data["challenges"] == [{"name": "softmax", "difficulty": "medium"}]
    subs = {s["name"]: s for s in data["submissions"]}
    assert set(subs) == {"reference", *MUTANTS}
    verdicts = {
        name: {t["test"]: (t["outcome"], t["category"]) for c in s["challenges"] for t in c["tests"]}
        for name, s in subs.items()
    }
    assert verdicts["reference"] == dict.fromkeys(verdicts["reference"], ("passed", ""))
    assert len(verdicts["reference"]) == 3
    for name, spec in MUTANTS.items():
        for test in spec["catches"]:
            assert verdicts[name][test] == ("failed", spec["category"]), (name, test, verdicts[name])
    result.assert_outcomes(passed=3 + 3 * len(MUTANTS) - 2, failed=2, deselected=result.parseoutcomes()["deselected"])
    assert subs["reference"]["overall_score"] == 1.0


def test_entry_point_gives_markers_and_collection(example: pytest.Pytester) -> None:
    example.syspathinsert(_entry_point_stub(example.path / "site"))
    models = _models(example.path, [])
    result = example.runpytest("--llm-submission", str(models), "--strict-markers", "--collect-only", "-q", *ARGS)
    assert result.ret == 0, result.stdout.str()
    collected = [ln for ln in result.outlines if "::" in ln]
    assert len(collected) == 3 and all("test_softmax.py" in ln for ln in collected), collected
    markers = example.runpytest("--markers", "-p", "no:cacheprovider")
    markers.stdout.fnmatch_lines(["@pytest.mark.softmax: the softmax challenge: Numerically stable softmax*"])
    markers.stdout.fnmatch_lines(["@pytest.mark.medium: challenges of difficulty medium (*softmax)"])


def test_scaffold_writes_the_registered_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the package imported here is forgotten after
    monkeypatch.syspath_prepend(str(SRC))
    monkeypatch.syspath_prepend(str(_entry_point_stub(tmp_path / "site")))
    lines = scaffold.scaffold("m", tmp_path / "out")
    assert (tmp_path / "out" / "m" / "softmax" / "PROMPT.md").read_text() == (PACKAGE / "prompt.md").read_text()
    assert " [+] softmax  (MEDIUM)" in lines
    assert "softmax" not in CHALLENGE_NAMES  # the scaffold's registration ends with it


def test_scaffold_command_sees_the_entry_point(tmp_path: Path) -> None:
    path = os.pathsep.join([str(_entry_point_stub(tmp_path / "site")), str(SRC)])
    cmd = [sys.executable, "-m", "pytest_llmchallenges", "scaffold", "-n", "m", "--dest", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert " [+] softmax  (MEDIUM)" in done.stdout and "Scaffolded 9 challenges" in done.stdout
    assert (tmp_path / "m" / "softmax" / "PROMPT.md").is_file()


def test_a_suite_naming_a_driver_function_by_string_is_a_grader_fault(pytester: pytest.Pytester) -> None:
    """The example's driver declares its entry points (@entry): its suite is checked at collection like a
    built-in one, and a string in ``sandbox.run`` stops the run as the grader's fault (exit 3)."""
    copy = pytester.path / "src" / "llmc_example_challenge"
    shutil.copytree(PACKAGE, copy)
    suite = copy / "suite" / "test_softmax.py"
    suite.write_text(suite.read_text().replace("sandbox.run(softmax_of, x)", 'sandbox.run("softmax_of", x)', 1))
    pytester.syspathinsert(copy.parent)
    pytester.makeconftest(HOOK)
    result = pytester.runpytest("--llm-submission", str(_models(pytester.path, [])), *ARGS)
    assert result.ret == 3, result.stdout.str()
    result.stdout.fnmatch_lines(["*grader fault: test_softmax.py:*declares its entry points*"])


SNOOP = """
import subprocess

import numpy as np

SECRETS = {secrets!r}
OUTSIDE_PYTHON = {outside!r}  # a program of its own: no audit hook, only what the kernel lets it see


def _seen():
    seen = []
    for path in SECRETS:
        try:
            open(path).read()
            seen.append(path)
        except OSError:
            pass
        if OUTSIDE_PYTHON and subprocess.run(["cat", path], capture_output=True).stdout:
            seen.append("cat " + path)
    try:
        import llmc_example_challenge.oracle  # noqa: F401
        seen.append("import")
    except Exception:
        pass
    return seen


def softmax(x, axis=-1):
    if _seen():
        return np.zeros_like(x)  # graded wrong: the child read what it must not
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
"""


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_child_reads_the_driver_only(example: pytest.Pytester, isolation: str) -> None:
    """The driver is imported in the child; the package's suite, oracle and prompt cannot be opened there,
    by the kernel's view (namespaces) or by the audit hook alone (isolation off)."""
    example.makeconftest(HOOK)
    secrets = [str(PACKAGE / "oracle.py"), str(PACKAGE / "suite" / "test_softmax.py"), str(PACKAGE / "prompt.md")]
    (example.path / "m" / "softmax").mkdir(parents=True)
    (example.path / "m" / "softmax" / "softmax.py").write_text(SNOOP.format(secrets=secrets, outside=False))
    result = example.runpytest("--llm-submission", "m", "--llm-isolation", isolation, "-k", "matches", *ARGS)
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])


@pytest.mark.parametrize(
    ("conftest", "expect"),
    [
        (
            "from pytest_llmchallenges.registry import packaged\n"
            "def pytest_llmchallenges_register(registry):\n"
            "    registry.add(packaged({src!r}, 'kv', 'medium', 'again', 10))\n",
            "*challenge 'kv': a built-in challenge has that name*",
        ),
        (
            "from pytest_llmchallenges.registry import packaged\n"
            "def pytest_llmchallenges_register(registry):\n"
            "    registry.add(packaged({src!r}, 'softmax', 'easy', 'x', 10))\n",
            "*challenge 'softmax': difficulty 'easy' is not one of medium, hard, extra_hard, research*",
        ),
    ],
)
def test_a_bad_registration_is_one_usage_error(example: pytest.Pytester, conftest: str, expect: str) -> None:
    example.makeconftest(conftest.format(src=str(PACKAGE)))
    result = example.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expect}"])
    assert "softmax" not in CHALLENGES and "kv" in CHALLENGES


@pytest.mark.parametrize(
    ("target", "expect"),
    [
        ("no_such_module_here:challenge", "*entry point softmax = no_such_module_here:challenge: ModuleNotFound*"),
        ("llmc_example_challenge:HERE", "*entry point softmax = llmc_example_challenge:HERE: gave PosixPath*"),
    ],
)
def test_a_broken_entry_point_is_one_usage_error(example: pytest.Pytester, target: str, expect: str) -> None:
    example.syspathinsert(_entry_point_stub(example.path / "site", target))
    result = example.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expect}"])


def test_challenge_names_are_read_live() -> None:
    """Modules import CHALLENGE_NAMES once; a challenge registered later is in it all the same."""
    added = registry.Registry()
    added.add(registry.packaged(PACKAGE, "softmax", "medium", "s", 1))
    try:
        assert CHALLENGE_NAMES[-1] == "softmax" and "softmax" in CHALLENGE_NAMES and len(CHALLENGE_NAMES) == 9
    finally:
        added.clear()
    assert "softmax" not in CHALLENGE_NAMES and len(CHALLENGE_NAMES) == len(list(CHALLENGE_NAMES)) == 8


def test_child_side_code_must_live_apart(tmp_path: Path) -> None:
    """A suite inside the driver folder would be readable by the child: refused."""
    for part in ("suite", "driver"):
        (tmp_path / part).mkdir()
    (tmp_path / "prompt.md").write_text("p")
    (tmp_path / "driver" / "llmc_drive_demo.py").write_text("")
    spec = registry.packaged(tmp_path, "demo", "hard", "demo", 5, suite=None)
    assert registry.problems(spec) == [f"suite {None} does not exist"]
    inside = replace(spec, suite=tmp_path / "driver" / "llmc_drive_demo.py")
    why = f"suite {inside.suite} lies inside the driver folder, which the child may read"
    assert registry.problems(inside) == [why]
    assert registry.problems(replace(inside, suite=tmp_path / "suite")) == []


def test_a_package_beneath_a_readable_path_stays_hidden(pytester: pytest.Pytester, monkeypatch) -> None:
    """An installed package lies beneath site-packages, which the child may read: its folder is covered in the
    child's root (or refused by the audit hook), while its driver folder is bound apart and imported."""
    if not isolation.probe().namespaces:
        pytest.skip("needs user namespaces: the child's own root is what this checks")
    site = pytester.path / "site"
    copy = site / "llmc_example_challenge"
    shutil.copytree(PACKAGE, copy)
    readable = isolation._readable()
    monkeypatch.setattr(isolation, "_readable", lambda: (*readable, str(site)))
    pytester.syspathinsert(site)
    pytester.makeconftest(HOOK)
    secrets = [str(copy / "oracle.py"), str(copy / "suite" / "test_softmax.py"), str(copy / "prompt.md")]
    (pytester.path / "m" / "softmax").mkdir(parents=True)
    (pytester.path / "m" / "softmax" / "softmax.py").write_text(SNOOP.format(secrets=secrets, outside=True))
    result = pytester.runpytest("--llm-submission", "m", "--llm-isolation", "strict", "-k", "matches", *ARGS)
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])


def test_capability_needs_skip_every_test_where_absent(example: pytest.Pytester) -> None:
    if capabilities.missing("gpu") is None:
        pytest.skip("this machine has a CUDA GPU: nothing to skip")
    example.makeconftest(
        "from dataclasses import replace\n"
        "from llmc_example_challenge import challenge\n"
        "def pytest_llmchallenges_register(registry):\n"
        "    registry.add(replace(challenge(), needs=('gpu',)))\n"
    )
    models = _models(example.path, [])
    result = example.runpytest("--llm-submission", str(models), "--llm-report", "r.json", *ARGS)
    result.assert_outcomes(skipped=3, deselected=result.parseoutcomes()["deselected"])
    (cell,) = json.loads((example.path / "r.json").read_text())["submissions"][0]["challenges"]
    assert cell["missing_capabilities"] == ["cuda_gpu"] and cell["graded"] == 0
