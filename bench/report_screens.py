"""Screenshots of the HTML report as a person sees it: the reference, and a mixed bench, in headless Chromium.

    python bench/report_screens.py [--out docs] [--workers 2] [--from-json DIR]

The mixed bench is built from the reference: a correct copy, a copy with known-wrong edits (mutants from
tests/mutants), a model that answered three challenges (the rest missing), and one folder holding only the
scaffold's PROMPT.md files; on a machine without a GPU every fuse cell is partial. Both benches are graded by
the plugin (``--llm-report x.json``), rendered by report_html at 1400 px wide, and written as
``report-reference.png`` and ``report-mixed.png``. ``--from-json DIR`` skips grading and renders DIR's
``reference.json`` and ``mixed.json``. Needs Debian's ``chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_llmchallenges.report_html import to_html  # noqa: E402
from pytest_llmchallenges.scaffold import scaffold  # noqa: E402
from tests import mutants  # noqa: E402

WIDTH = 1400
WRONG = {"backwards": 0, "kv": 0, "flash_attention": 0, "beam_search": 0}  # challenge -> which mutant
ANSWERED = ("backwards", "kv", "beam_search")


def build_bench(root: Path) -> Path:
    """reference-copy (correct), mutated (wrong in four challenges), three-of-eight (missing), scaffold-only."""
    bench = root / "bench"
    shutil.copytree(REPO / "reference", bench / "reference-copy", symlinks=False)
    shutil.copytree(REPO / "reference", bench / "mutated", symlinks=False)
    for challenge, index in WRONG.items():
        found, _ = mutants.load(challenge)
        scratch = root / "scratch"
        folder = mutants.materialise(found[index], scratch)
        shutil.rmtree(bench / "mutated" / challenge)
        shutil.copytree(folder / challenge, bench / "mutated" / challenge)
        shutil.rmtree(scratch)
    for challenge in ANSWERED:
        shutil.copytree(REPO / "reference" / challenge, bench / "three-of-eight" / challenge)
    scaffold("scaffold-only", bench)
    return bench


def grade(args: list[str], cwd: Path, report: Path, workers: str) -> float:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, f"--llm-report={report}"]
    if workers != "0":
        cmd += ["-n", workers]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if not report.exists():
        sys.exit(f"grading wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def screenshot(html_file: Path, png: Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium: apt-get install -y chromium")
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd += [f"--window-size={WIDTH},{height}", f"--screenshot={png}", html_file.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--from-json", type=Path, help="render DIR/reference.json and DIR/mixed.json, no grading")
    parser.add_argument("--height", type=int, default=1250, help="screenshot height in px")
    parser.add_argument("--keep-json", type=Path, help="also copy the graded reports to this folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.from_json:
            reports = {n: args.from_json / f"{n}.json" for n in ("reference", "mixed")}
        else:
            reports = {n: work / f"{n}.json" for n in ("reference", "mixed")}
            wall = grade(["--llm-reference"], work, reports["reference"], args.workers)
            print(f"graded the reference in {wall:.0f} s")
            bench = build_bench(work)
            wall = grade([f"--llm-submission={bench}"], work, reports["mixed"], args.workers)
            print(f"graded the mixed bench in {wall:.0f} s")
        for name, report in reports.items():
            data = json.loads(report.read_text())
            page = work / f"{name}.html"
            page.write_text(to_html(data))
            if args.keep_json:
                args.keep_json.mkdir(parents=True, exist_ok=True)
                shutil.copy(report, args.keep_json / f"{name}.json")
            png = args.out / f"report-{name}.png"
            screenshot(page, png, args.height)
            print(f"wrote {png} ({WIDTH} px wide)")


if __name__ == "__main__":
    main()
