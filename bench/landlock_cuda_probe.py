"""Which part of the sandbox's confinement breaks the CUDA runtime? (run on a GPU machine)

Under the sandbox's Landlock ruleset the CUDA runtime fails with cudaErrorOperatingSystem (seen on an H200
host), so the fuse challenge's calls run without Landlock. This script starts one fresh interpreter per
variant of the confinement, applies it, then initialises CUDA through CuPy and runs a kernel, and prints one
line per variant: ok, or the error. The variant that first fails names the culprit (writes outside the temp
folder and /dev, TCP, signal scoping, or no_new_privs alone, which disables setuid helpers such as
nvidia-modprobe). Prints one line and exits 0 where there is no CUDA device.

    python bench/landlock_cuda_probe.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CHILD_DIR = REPO / "pytest_llmchallenges" / "child"

# name: (writable folders, or None for no Landlock; deny TCP; scope signals; set no_new_privs alone)
VARIANTS: dict[str, tuple[list[str] | None, bool, bool, bool]] = {
    "nothing": (None, False, False, False),
    "no_new_privs only": (None, False, False, True),
    "sandbox (temp + /dev, no TCP, signal scope)": (["{tmp}", "/dev"], True, True, False),
    "writes only (temp + /dev)": (["{tmp}", "/dev"], False, False, False),
    "writes anywhere, no TCP, signal scope": (["/"], True, True, False),
    "writes anywhere, no TCP": (["/"], True, False, False),
    "writes anywhere, signal scope": (["/"], False, True, False),
    "temp + /dev + /tmp + home + /run + /proc + /sys": (
        ["{tmp}", "/dev", "/tmp", "/var/tmp", "{home}", "/run", "/proc", "/sys"],
        True,
        True,
        False,
    ),
}

_CHILD = """
import ctypes, json, os, sys
sys.path.insert(0, sys.argv[1])
import llmc_confine
writable, deny_tcp, scope, nnp = json.loads(sys.argv[2])
status = "no landlock"
if nnp:
    status = "no_new_privs " + str(ctypes.CDLL(None).prctl(38, 1, 0, 0, 0))
if writable is not None:
    status = llmc_confine.landlock([w for w in writable if os.path.isdir(w)], deny_tcp=deny_tcp, scope_signals=scope)
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    x = cupy.arange(1 << 20, dtype=cupy.float32)
    total = float((x * 2).sum())
    cupy.cuda.Device().synchronize()
    print(json.dumps({"status": status, "ok": True, "detail": f"{n} device(s), sum {total:.0f}"}))
except Exception as exc:
    print(json.dumps({"status": status, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}))
"""


def probe(name: str, variant: tuple[list[str] | None, bool, bool, bool], tmp: str) -> str:
    """One line: the variant, what the child applied, and whether CUDA worked under it."""
    writable, deny_tcp, scope, nnp = variant
    if writable is not None:
        writable = [w.format(tmp=tmp, home=os.path.expanduser("~")) for w in writable]
    arg = json.dumps([writable, deny_tcp, scope, nnp])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(CHILD_DIR), arg], capture_output=True, text=True, timeout=120, cwd=tmp
        )
    except subprocess.TimeoutExpired:
        return f"TIMEOUT {name}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return f"CRASH   {name}: exit {proc.returncode}: {(proc.stderr or proc.stdout)[-300:]!r}"
    got = json.loads(lines[-1])
    return f"{'ok     ' if got['ok'] else 'FAILS  '} {name} [{got['status']}]: {got['detail'][:300]}"


def main() -> int:
    from pytest_llmchallenges.capabilities import missing

    reason = missing("gpu")
    if reason:
        print(f"landlock CUDA probe skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="landlock-probe-") as tmp:
        for name, variant in VARIANTS.items():
            print(probe(name, variant, tmp), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
