"""Print the wall time of grading the reference, and the sandbox's overhead per call.

    python bench/grade_reference.py [--workers 2]

Goals (issue 2): the whole CPU suite on the reference in under 60 s on 2 cores with -n 2; under 0.5 s of
sandbox overhead per (submission, challenge). Issue 15: the isolated fork-server path under 60 ms per call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


MODES = (("fork", "off"), ("fork", "auto"), ("spawn", "off"), ("spawn", "auto"))


def sandbox_overhead(calls: int = 20) -> dict[tuple[str, str], tuple[float, float]]:
    """Median and best seconds per trivial call, for each (launcher, isolation) pair, interleaved round by round
    so that the machine's load weighs on every mode alike. ``off`` is the path before issue 15 (temp copy,
    Landlock writes only); ``auto`` adds namespaces, a fresh root, Landlock reads and a cgroup per call."""
    from pytest_llmchallenges import launcher
    from pytest_llmchallenges.calls import Sandbox
    from pytest_llmchallenges.child.llmc_drive_selfcheck import call_entry

    times: dict[tuple[str, str], list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "backwards"
        folder.mkdir()
        (folder / "sol.py").write_text("def entry(x):\n    return x\n")
        launchers = {}
        for start in ("fork", "spawn"):
            os.environ["LLMC_SANDBOX"] = start
            launcher._LAUNCHER.clear()
            launchers[start] = launcher.launcher({})  # the fork server's start-up is paid once per process
        boxes = {m: Sandbox("backwards", folder, 30, isolation=m[1]) for m in MODES}
        for m, box in boxes.items():
            launcher._LAUNCHER[:] = [launchers[m[0]]]
            box.run(call_entry, 1)
        for _ in range(calls):
            for m, box in boxes.items():
                launcher._LAUNCHER[:] = [launchers[m[0]]]
                start_t = time.perf_counter()
                box.run(call_entry, 1)
                times[m].append(time.perf_counter() - start_t)
        os.environ.pop("LLMC_SANDBOX", None)
    return {m: (statistics.median(t), min(t)) for m, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--overhead-only", action="store_true", help="skip grading the reference")
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    from pytest_llmchallenges import isolation

    print(isolation.describe())
    for (start, iso), (median, best) in sandbox_overhead(args.calls).items():
        label = "fork server" if start == "fork" else "fresh interpreter"
        path = "isolated (issue 15)" if iso == "auto" else "old path (temp copy, Landlock writes)"
        print(f"sandbox overhead per call, {label}, {path}: median {median * 1000:.0f} ms, best {best * 1000:.0f} ms")
    if args.overhead_only:
        return
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
