"""Run the reference ternary training in full and print the figures the ternary_training goals name.

    python bench/ternary_train.py                 # full run, report written to a temp folder
    python bench/ternary_train.py --write-reference   # ... and into reference/ternary_training/ (the evidence)
    python bench/ternary_train.py --steps 40      # a shortened run (also: TERNARY_STEPS=40)

Goals (issue: ternary_training): held-out perplexity below 100 with the reference's tokenizer, bits per byte
next to it, every weight verified ternary, samples that visibly learned the data, under 15 minutes on 2 CPU
cores. The training runs in a child process so that its wall and CPU time are its own; the machine's load
average is printed with it, because a busy machine stretches the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference" / "ternary_training"
WALL_LIMIT_S = 15 * 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="shortened run (default: the reference's full run)")
    ap.add_argument("--write-reference", action="store_true", help="write report.json/REPORT.md into the reference")
    args, extra = ap.parse_known_args()
    out = REFERENCE if args.write_reference else Path(tempfile.mkdtemp(prefix="ternary-bench-"))
    cmd = [sys.executable, str(REFERENCE / "train.py"), "--out", str(out), "--data", str(REPO / "train_data.txt")]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    cmd += extra
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REFERENCE)
    wall = time.perf_counter() - start
    if proc.returncode:
        print(f"training failed with exit code {proc.returncode}")
        return proc.returncode
    report = json.loads((out / "report.json").read_text())
    v, t = report["validation"], report["ternary_verification"]
    rows = [
        ("final training loss", f"{report['final_train_loss']:.4f}", ""),
        (
            "validation perplexity",
            f"{v['perplexity']:.2f}",
            "goal < 100: " + ("met" if v["perplexity"] < 100 else "MISSED"),
        ),
        (
            "validation bits per byte",
            f"{v['bits_per_byte']:.4f}",
            f"{v['tokens']} tokens / {v['bytes']} bytes held out",
        ),
        ("perplexity before training", f"{report['initial_validation']['perplexity']:.1f}", "step 0"),
        (
            "ternary verification",
            "PASS" if t["all_ternary"] else "FAIL",
            f"max |W_q/s - round| {t['max_deviation']:.2g}, scale error {t['max_scale_relative_error']:.2g}, "
            f"{t['ternary_weights']:,} weights in {t['ternary_layers']} layers, {100 * t['fraction_zero']:.1f}% zeros",
        ),
        ("steps x batch x seq", f"{report['steps']} x {report['batch_size']} x {report['seq_len']}", ""),
        ("parameters", f"{report['parameters']:,}", f"preset {report['preset']}"),
        ("wall time", f"{wall:.0f} s", "goal < 900 s on 2 cores: " + ("met" if wall < WALL_LIMIT_S else "MISSED")),
        ("CPU time", f"{report.get('cpu_time_s', float('nan')):.0f} s", f"{os.cpu_count()} CPUs visible"),
        ("load average", f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after", "other work stretches wall time"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<18} {note}")
    print("samples:")
    for s in report["samples"]:
        print(f"  {s['text']!r}")
    print(f"report: {out / 'report.json'}, {out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
