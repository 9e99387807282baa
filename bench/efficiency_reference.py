"""Grade the reference's efficiency twice and print each figure of both runs and their relative difference:
the run-to-run spread that docs/efficiency.md states.

    python bench/efficiency_reference.py [--runs 2] [-k EXPR]

Runs `pytest --llm-reference -m perf -p no:xdist` (serially: perf tests under -n 2 share the cores with
grading tests and spread more) and reads the figures from the JUnit XML (the `llm_efficiency` property).
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def one_run(tmp: Path, index: int, expr: str) -> tuple[float, dict[str, dict]]:
    xml = tmp / f"run{index}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--llm-reference"]
    cmd += ["-m", "perf", f"--junitxml={xml}"] + (["-k", expr] if expr else [])
    start = time.perf_counter()
    subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    figures = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("classname", "").rsplit(".", 1)[-1]
        for prop in case.iter("property"):
            if prop.get("name") == "llm_efficiency":
                figures[name] = ast.literal_eval(prop.get("value", "{}"))
        if name not in figures:  # failed or skipped before measuring: say why
            bad = next((c for c in case if c.tag in ("skipped", "failure", "error")), None)
            figures[name] = {"summary": f"no figures: {bad.tag if bad is not None else '?'}: "
                             f"{(bad.get('message') if bad is not None else '') or ''}"[:300]}  # fmt: skip
    return wall, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(Path(tmp), i, args.k) for i in range(args.runs)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.runs} runs of the reference's perf suite: " + ", ".join(f"{w:.0f} s" for w, _ in runs)
          + f" wall on {os.cpu_count()} cores (load average now {load:.1f})")  # fmt: skip
    first = runs[0][1]
    for test, figures in sorted(first.items()):
        print(f"{test}: {figures.get('summary', '')}")
        for key, value in figures.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key.endswith(("_reps", "_spread")):
                continue
            others = [r[1].get(test, {}).get(key) for r in runs[1:]]
            diffs = [abs(o - value) / abs(value) for o in others if isinstance(o, (int, float)) and value]
            shown = ", ".join(f"{o}" for o in others)
            print(f"  {key:28} {value!s:>10}  | {shown:>10}" + (f"  ({100 * max(diffs):.0f}% apart)" if diffs else ""))


if __name__ == "__main__":
    main()
