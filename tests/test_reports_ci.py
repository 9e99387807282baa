"""docs/ci.md, run: every ``run:`` line of its workflow, in order, on a small models folder.

The GPU job runs here too: on a machine without a GPU its fuse tests are skipped for the capability, and
the merge shows fuse as partial; with a GPU they are graded. ``pip install`` lines are checked, not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import mutants
from tests.test_reports_schema import validate

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ci.md"
RUN = re.compile(r"^\s*-?\s*run: (.+)$")


def workflow_commands() -> list[str]:
    """The ``run:`` lines of the doc's YAML blocks, in the order a reader meets them."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return [m.group(1).strip() for block in blocks for line in block.splitlines() if (m := RUN.match(line))]


def models(root: Path) -> None:
    """model-a answers backwards (the reference's) and fuse; model-b answers backwards wrongly (a mutant)."""
    shutil.copytree(REPO / "reference" / "backwards", root / "models" / "model-a" / "backwards")
    shutil.copytree(REPO / "reference" / "fuse", root / "models" / "model-a" / "fuse")
    found, _ = mutants.load("backwards")
    folder = mutants.materialise(found[0], root / "scratch")
    shutil.copytree(folder / "backwards", root / "models" / "model-b" / "backwards")
    shutil.rmtree(root / "scratch")


def test_the_doc_has_the_three_jobs() -> None:
    commands = workflow_commands()
    assert any("--llm-report=cpu.json" in c and "--junitxml" in c for c in commands)
    assert any("-m fuse" in c and "--llm-report=gpu.json" in c for c in commands)
    assert any(c.startswith("llmchallenges merge cpu.json gpu.json") for c in commands)
    assert any(c.startswith("llmchallenges diff") for c in commands)


def test_every_command_of_docs_ci_runs(tmp_path: Path) -> None:
    models(tmp_path)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in workflow_commands():
        if command.startswith("pip install"):
            assert "pytest-llmchallenges" in command
            continue
        if "baseline.json" in command:  # the main branch's grades: here, the same run
            shutil.copy(tmp_path / "grades.json", tmp_path / "baseline.json")
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        allowed = (0, 1) if command.startswith("pytest ") else (0,)  # grading fails when a model does
        assert proc.returncode in allowed, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in ("cpu", "gpu"):
        ET.parse(tmp_path / f"{name}-junit.xml")
        validate(json.loads((tmp_path / f"{name}.json").read_text()))
    grades = json.loads((tmp_path / "grades.json").read_text())
    validate(grades)
    assert [r["run"] for r in grades["runs"]] == ["cpu.json", "gpu.json"]
    by_name = {s["name"]: s for s in grades["submissions"]}
    assert set(by_name) == {"model-a", "model-b"}
    a = {c["name"]: c for c in by_name["model-a"]["challenges"]}
    assert a["backwards"]["failed"] == 0 and a["backwards"]["passed"] > 0
    assert {t["run"] for t in a["backwards"]["tests"]} == {"cpu.json"}
    assert {t["run"] for t in a["fuse"]["tests"]} == {"gpu.json"}
    b = {c["name"]: c for c in by_name["model-b"]["challenges"]}
    assert b["backwards"]["failed"] > 0
    assert by_name["model-a"]["rank"] == 1
    text = summary.read_text()
    assert text.startswith("# LLM challenge grades") and "No verdict changed." in text
    assert (tmp_path / "grades.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("line", ["- run: echo hi", "  run: echo hi", "      - run: echo hi"])
def test_run_lines_are_found(line: str) -> None:
    m = RUN.match(line)
    assert m and m.group(1) == "echo hi"
