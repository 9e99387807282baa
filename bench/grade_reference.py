"""Print the wall time of grading the reference, and the sandbox's overhead per call.

    python bench/grade_reference.py [--workers 2]

Goals (issue 2): the whole CPU suite on the reference in under 60 s on 2 cores with -n 2; under 0.5 s of
sandbox overhead per (submission, challenge).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sandbox_overhead(calls: int = 20) -> tuple[float, float]:
    """Seconds per trivial call (fork server) and per trivial call with a fresh interpreter (spawn)."""
    from pytest_llmchallenges import launcher
    from pytest_llmchallenges.sandbox import Sandbox

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "backwards"
        folder.mkdir()
        (folder / "sol.py").write_text("def entry(x):\n    return x\n")
        results = []
        for mode in ("fork", "spawn"):
            os.environ["LLMC_SANDBOX"] = mode
            launcher._LAUNCHER.clear()
            box = Sandbox("backwards", folder, 30)
            box.run("selfcheck:call_entry", 1)  # start-up of the fork server is paid once per process
            start = time.perf_counter()
            for _ in range(calls):
                box.run("selfcheck:call_entry", 1)
            results.append((time.perf_counter() - start) / calls)
        os.environ.pop("LLMC_SANDBOX", None)
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    fork, spawn = sandbox_overhead()
    print(f"sandbox overhead per call: fork server {fork * 1000:.0f} ms, fresh interpreter {spawn * 1000:.0f} ms")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--llm-reference"]
    if args.workers != "0":
        cmd += ["-n", args.workers]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
    summary = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln]
    print(f"grading the reference ({' '.join(cmd[3:])}): {wall:.1f} s wall, on {os.cpu_count()} cores")
    print(summary[-1] if summary else proc.stdout[-2000:])


if __name__ == "__main__":
    main()
