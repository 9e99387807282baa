"""Print the wall time of grading the whole hostile corpus next to the reference (goal: under 3 minutes).

    python bench/hostile_corpus.py

Runs what tests/test_hostile.py runs: the backwards suite over tests/hostile and the reference with a 3 s
call limit and a 256 MiB memory cap, two workers; then cases 10, 23 and 26 (flash_attention) on their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "pytest_llmchallenges" / "suites"


def run(args: list[str], tmp: str) -> tuple[float, dict]:
    report = Path(tmp) / "r.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--llm-report", str(report), *args]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(report.read_text())


def main() -> None:
    sys.path.insert(0, str(REPO))
    from pytest_llmchallenges import isolation

    print(isolation.describe())
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = run(
            [
                "--llm-submission",
                str(REPO / "tests/hostile"),
                "--llm-submission",
                str(REPO / "reference"),
                str(SUITES / "test_backwards.py"),
                "--llm-timeout",
                "3",
                "--llm-memory",
                "256",
                "-n",
                "2",
            ],
            tmp,
        )
        nxn, nxn_data = run(
            [
                "--llm-submission",
                str(REPO / "tests/hostile/10_hidden_nxn"),
                "--llm-submission",
                str(REPO / "tests/hostile/23_forge_protocol"),
                "--llm-submission",
                str(REPO / "tests/hostile/26_spot_rows"),
                str(SUITES / "test_flash_attention.py"),
                "-k",
                "no_nxn",
            ],
            tmp,
        )
    for sub in data["submissions"] + nxn_data["submissions"]:
        tests = [t for c in sub["challenges"] if c["status"] == "graded" for t in c["tests"]]
        if not tests:
            continue
        cats = sorted({t["category"] for t in tests if t["outcome"] == "failed"}) or ["all passed"]
        print(f"{sub['name']:28s} {sub.get('overall_grade', '?'):4s} {', '.join(cats)}")
    print(
        f"corpus + reference (backwards suite, -n 2): {corpus:.1f} s; cases 10, 23, 26 (flash_attention): {nxn:.1f} s; "
        f"total {corpus + nxn:.1f} s (goal < 180 s)"
    )


if __name__ == "__main__":
    main()
