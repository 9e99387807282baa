"""Run a grading session in a subprocess and return its JSON report: the meta-tests' one tool.

A subprocess, not pytester in-process, because grading spawns sandboxed children and installs a subreaper;
and because it is exactly what a user runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmchallenges.challenges import CHALLENGES

REPO = Path(__file__).resolve().parents[1]


def suite_file(challenge: str) -> Path:
    """A challenge's grading module (its efficiency module left out): ``challenges/<c>/suite/test_<c>.py``."""
    suite = CHALLENGES[challenge].suite
    assert suite is not None, challenge
    return suite / f"test_{challenge}.py"


@dataclass
class GradingRun:
    returncode: int
    stdout: str
    report: dict[str, Any]

    def outcomes(self, submission: str) -> dict[str, tuple[str, str, str]]:
        """test name -> (outcome, category, message) for one submission; a parametrized test counts as
        failed when any of its cases failed (the first failure is kept), else as its first case."""
        out: dict[str, tuple[str, str, str]] = {}
        for sub in self.report["submissions"]:
            if sub["name"] == submission:
                for ch in sub["challenges"]:
                    for t in ch["tests"]:
                        now = (t["outcome"], t["category"], t["message"])
                        if t["test"] not in out or (now[0] == "failed" and out[t["test"]][0] != "failed"):
                            out[t["test"]] = now
        return out


def grade(
    submissions: list[Path],
    tmp: Path,
    suites: list[str] | None = None,
    extra: list[str] | None = None,
    timeout: float = 1200,
) -> GradingRun:
    report = tmp / "report.json"
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--llm-report={report}"]
    for s in submissions:
        args += ["--llm-submission", str(s)]
    args += [str(suite_file(c)) for c in suites or []]
    args += extra or []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env)
    data = json.loads(report.read_text()) if report.exists() else {"submissions": []}
    return GradingRun(proc.returncode, proc.stdout + proc.stderr, data)
