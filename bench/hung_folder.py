"""Print the wall time of grading a folder of 20 flash_attention answers, two of which never return and one of
which takes 30 s a call (issue 17's "time limits from the same measurement": goal under 3 minutes with the
defaults, -n 2, 2 cores, and no correct answer timing out).

    python bench/hung_folder.py [--workers 2]

The 17 correct answers are copies of the reference; every call of theirs must pass. The three others must
end as `timeout`, cut at the limit derived from the reference's time for the same call (limits.py), not at the
challenge's own 60 s. Efficiency tests are left out (-m "not perf"): they have limits of their own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HANGS = """
import time

def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    while True:
        time.sleep(1)
"""

SLOW = """
import time

import numpy as np


def flash_attention_fwd(Q, K, V, tile_size, causal=True):
    time.sleep(30)
    s = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if causal:
        s = np.where(np.tri(Q.shape[-2], dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ V
"""


def build(root: Path) -> None:
    for i in range(17):
        shutil.copytree(REPO / "reference" / "flash_attention", root / f"correct{i:02d}" / "flash_attention")
    for name, source in (("hangs0", HANGS), ("hangs1", HANGS), ("slow30", SLOW)):
        folder = root / name / "flash_attention"
        folder.mkdir(parents=True)
        (folder / "flash.py").write_text(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        build(root)
        report = Path(tmp) / "r.json"
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"-n{args.workers}", "-m", "not perf",
            "-k", "flash_attention and not bwd", f"--llm-submission={root}", f"--llm-report={report}",
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - start
        data = json.loads(report.read_text())
    verdicts: Counter[str] = Counter()
    wrong_for_correct = []
    for sub in data["submissions"]:
        for c in sub["challenges"]:
            for t in c["tests"]:
                verdicts[f"{'correct' if sub['name'].startswith('correct') else sub['name']}: {t['outcome']}"] += 1
                if sub["name"].startswith("correct") and t["outcome"] == "failed":
                    wrong_for_correct.append(f"{sub['name']}::{t['test']} [{t['category']}] {t['message'][:120]}")
    print(f"20 flash_attention answers (17 correct, 2 hanging, 1 at 30 s a call), -n {args.workers}: {wall:.0f} s")
    print("goal: under 180 s; " + ("met" if wall < 180 else "MISSED"))
    for key, n in sorted(verdicts.items()):
        print(f"  {key}: {n}")
    for line in wrong_for_correct:
        print("  CORRECT ANSWER FAILED: " + line)


if __name__ == "__main__":
    main()
